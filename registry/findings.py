"""What a coordinator found about a case, kept as codes of a kind (a housing need, a home-visit finding).

A flow branches on these codes, so they stay in the registry and the flow reads them through a
task: Prefect sees which branch was taken, never the circumstances behind it. Each kind names its
codes in its own module (``registry.housing``, ``registry.hoarding``); this module keeps them,
and audits every change in the name of who made it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.cases import CaseError, audit
from registry.models import Case, CaseFinding


def codes_of(session: Session, case: Case, kind: str, order: Iterable[str]) -> tuple[str, ...]:
    """The case's findings of ``kind`` that hold, in ``order`` (the kind's own table)."""
    recorded = set(
        session.scalars(select(CaseFinding.code).where(CaseFinding.case_id == case.id, CaseFinding.kind == kind))
    )
    return tuple(code for code in order if code in recorded)


def record(
    session: Session,
    case: Case,
    kind: str,
    changes: Mapping[str, bool],
    *,
    known: Iterable[str],
    intervention: str,
    by: str,
) -> tuple[str, ...]:
    """Add (True) or remove (False) findings of ``kind`` on an open case of ``intervention``; returns
    the findings that hold now, in ``known``'s order.

    Codes not named keep what was recorded, so a later visit records only what changed.
    """
    order = list(known)
    unknown = sorted(set(changes) - set(order))
    if unknown:
        raise CaseError(f"{kind}: 알 수 없는 항목 {', '.join(unknown)} (unknown)")
    if not changes:
        raise CaseError(f"{kind}: 기록할 항목이 없습니다 (nothing to record)")
    if case.status != "open":
        raise CaseError(f"case: 사례 {case.ref}는 종결되었습니다 (case is closed)")
    if case.intervention != intervention or case.resident is None:
        raise CaseError(f"case: 사례 {case.ref}는 {intervention} 사례가 아닙니다 (not a {intervention} case)")
    rows = {
        row.code: row
        for row in session.scalars(select(CaseFinding).where(CaseFinding.case_id == case.id, CaseFinding.kind == kind))
    }
    for code, present in changes.items():
        if present and code not in rows:
            session.add(CaseFinding(case_id=case.id, kind=kind, code=code, recorded_by=by))
        elif not present and code in rows:
            session.delete(rows[code])
    session.flush()
    now = codes_of(session, case, kind, order)
    audit(
        session,
        case,
        by,
        f"{kind}-recorded",
        added=sorted(c for c, p in changes.items() if p),
        removed=sorted(c for c, p in changes.items() if not p),
        holds=list(now),
    )
    return now
