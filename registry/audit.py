"""The audit trail: who did what, who read whose personal data and why, and every disclosure.

PIPA (개인정보 보호법, and its 안전성 확보조치 기준 on access records) wants a record of every access
to personal data that cannot be quietly edited afterwards. So the trail is:

- **append-only in the database**: triggers refuse UPDATE and DELETE on ``audit`` (migration 0012),
  whatever code, or person with a SQL prompt, tries;
- **hash-chained**: each row stores ``prev_hash`` and ``hash`` = SHA-256 over the previous hash and
  a canonical serialisation of the row, so a row altered with the triggers dropped, a row removed
  from the middle or rows cut off the end are found by ``verify``.

Rows are only ever written by ``record`` (and ``record_read`` for reads). The chain is extended at
commit, not when ``record`` is called: the transaction then takes the lock on the chain's head
(``audit_head``) last, after every other row lock it needs, so appends serialise without holding
the head across a transaction's work and without lock-order deadlocks. A consequence: rows
recorded in a transaction are not visible to queries in that same transaction, only once it
commits (nothing needs them earlier).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from registry.models import AuditEntry, AuditHead, Case

# The hash a chain starts from (also migration 0012's, which hashed the rows written before it).
GENESIS = "0" * 64
HEAD_ID = 1
_PENDING = "audit_pending"

# Purposes a person reading personal data can give (``--purpose``); others are kept as typed.
PURPOSES = {
    "case-work": "사례 관리",
    "audit-review": "감사·점검",
    "consent-check": "동의 확인",
    "data-correction": "정보 정정",
    "registry-load": "등록부 적재",
}
# How the trail's actions read to a person, Korean first.
ACTIONS = {
    "read": "개인정보 열람 (read)",
    "disclosure": "기관에 정보 제공 (disclosure)",
    "disclosure-basis": "제공 근거 기록 (disclosure basis)",
    "consent-recorded": "동의 기록 (consent)",
    "approval-requested": "결재 요청 (decision requested)",
    "approval-decided": "결재 (decision)",
    "case-opened": "사례 개시 (case opened)",
    "case-closed": "사례 종결 (case closed)",
    "stage": "단계 (stage)",
    "referral-opened": "연계 의뢰 (referral)",
    "referral-answered": "기관 회신 (agency answer)",
    "resident-updated": "입주민 정보 변경 (personal data changed)",
    "job-facts-recorded": "자격 확인 사항 기록 (job facts)",
    "holiday-override": "공휴일 지정 (holiday override)",
    "registry-load": "등록부 적재 (registry load)",
    "login": "로그인 (log-in)",
    "login-failed": "로그인 실패 (failed log-in)",
    "logout": "로그아웃 (log-out)",
    "password-set": "비밀번호 설정 (password set)",
    "housing-needs": "주거지원 필요 사항 확인 (housing needs read for the handoffs)",
    "housing-needs-recorded": "주거지원 필요 사항 기록 (housing needs recorded)",
    "home-visit": "가정방문 확인 사항 확인 (home-visit findings read for the next steps)",
    "home-visit-recorded": "가정방문 확인 사항 기록 (home-visit findings recorded)",
}


def purpose_label(purpose: str | None) -> str:
    """A purpose as people read it: the Korean label with the code, or the text as given."""
    if not purpose:
        return "-"
    label = PURPOSES.get(purpose)
    return f"{label} ({purpose})" if label else purpose


def action_label(action: str) -> str:
    return ACTIONS.get(action, action)


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    case: Case | None = None,
    resident_ref: str | None = None,
    purpose: str | None = None,
    **detail: Any,
) -> AuditEntry:
    """Add a row to the trail; it is chained and written when the session commits.

    A row about a case concerns the case's resident unless told otherwise, so ``for_resident``
    finds it even if the case is later reassigned. ``detail`` is stored as JSON and hashed as it
    will be read back (hence the round trip), and must never hold personal data itself: names of
    fields, counts and references only.
    """
    stored: dict[str, Any] = json.loads(json.dumps(detail, ensure_ascii=False, default=str))
    entry = AuditEntry(
        at=dt.datetime.now(dt.UTC),
        case_id=case.id if case is not None else None,
        actor=actor,
        action=action,
        detail=stored,
        resident_ref=resident_ref if resident_ref is not None else (case.resident_ref if case is not None else None),
        purpose=purpose,
    )
    session.info.setdefault(_PENDING, []).append(entry)
    return entry


def record_read(session: Session, *, actor: str, resident_ref: str, purpose: str, what: str) -> AuditEntry:
    """Record that ``actor`` was shown ``resident_ref``'s personal data (``what``: which view) and why."""
    return record(session, actor=actor, action="read", resident_ref=resident_ref, purpose=purpose, what=what)


def canonical(entry: AuditEntry) -> str:
    """The row as hashed: its fields in a fixed order, JSON with sorted keys, times in UTC.

    Frozen: changing it breaks every chain already written (and migration 0012 hashed the rows
    before it with this very function).
    """
    return json.dumps(
        [
            utc_text(entry.at),
            entry.case_id,
            entry.actor,
            entry.action,
            entry.detail,
            entry.purpose,
            entry.resident_ref,
        ],
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )


def chain_hash(prev_hash: str, entry: AuditEntry) -> str:
    return hashlib.sha256(f"{prev_hash}\n{canonical(entry)}".encode()).hexdigest()


def utc(value: dt.datetime) -> dt.datetime:
    """A stored time in UTC: SQLite returns the UTC wall time ``record`` wrote, without a zone."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utc_text(value: dt.datetime) -> str:
    return utc(value).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _append_pending(session: Session) -> None:
    """Chain and insert the rows ``record`` collected, holding the head's lock until commit.

    Each row is flushed on its own so that its id (the order ``verify`` walks) follows the chain.
    """
    pending: list[AuditEntry] = session.info.pop(_PENDING, [])
    if not pending:
        return
    # Take the lock with a write before reading: PostgreSQL locks the row until commit, and on SQLite
    # the write begins the transaction and takes the single writer's lock (Python's sqlite3 runs a
    # lone SELECT outside any transaction, so reading first could chain onto a stale head).
    session.execute(update(AuditHead).where(AuditHead.id == HEAD_ID).values(rows=AuditHead.rows))
    head = session.execute(select(AuditHead.rows, AuditHead.hash).where(AuditHead.id == HEAD_ID)).one()
    rows, last = head.rows, head.hash
    for entry in pending:
        entry.prev_hash = last
        entry.hash = last = chain_hash(last, entry)
        session.add(entry)
        session.flush()
        rows += 1
    session.execute(update(AuditHead).where(AuditHead.id == HEAD_ID).values(rows=rows, hash=last))


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    _append_pending(session)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous: Any) -> None:
    """Rows of a transaction that rolled back were never written: forget them."""
    session.info.pop(_PENDING, None)


def for_resident(session: Session, resident_ref: str) -> list[AuditEntry]:
    """Every row concerning a resident, oldest first: reads of their data, and everything done in
    their cases (decisions, disclosures, stages) whoever the row names."""
    their_cases = select(Case.id).where(Case.resident_ref == resident_ref)
    return list(
        session.scalars(
            select(AuditEntry)
            .where(or_(AuditEntry.resident_ref == resident_ref, AuditEntry.case_id.in_(their_cases)))
            .order_by(AuditEntry.id)
        )
    )


@dataclass(frozen=True)
class Verdict:
    """What ``verify`` found: ``bad_id`` is the first row that does not match (None if all do)."""

    rows: int
    bad_id: int | None = None
    problem: str = ""
    # The hash of the last row checked: kept outside the database, it pins the trail up to there.
    last_hash: str = GENESIS

    @property
    def ok(self) -> bool:
        return not self.problem


def verify(session: Session) -> Verdict:
    """Walk the chain from the first row and report the first row whose hashes do not match.

    A row whose content changed fails its own ``hash``; a row removed or inserted makes the next
    row's ``prev_hash`` point elsewhere; rows cut off the end leave the head pointing past them.
    """
    last, count = GENESIS, 0
    rows: Iterable[AuditEntry] = session.scalars(
        select(AuditEntry).order_by(AuditEntry.id).execution_options(yield_per=1000)
    )
    for entry in rows:
        if entry.prev_hash != last:
            return Verdict(
                count,
                entry.id,
                f"기록 #{entry.id}의 앞 기록 해시가 맞지 않습니다: 앞 기록이 지워졌거나 끼워졌습니다 "
                f"(row {entry.id}: prev_hash does not match the row before; a row was removed or inserted)",
            )
        if chain_hash(last, entry) != entry.hash:
            return Verdict(
                count,
                entry.id,
                f"기록 #{entry.id}의 내용이 해시와 맞지 않습니다: 기록 후 변경되었습니다 "
                f"(row {entry.id}: content does not match its hash; it was altered after it was written)",
            )
        last, count = entry.hash, count + 1
    head = session.execute(select(AuditHead.rows, AuditHead.hash).where(AuditHead.id == HEAD_ID)).one_or_none()
    if head is None or (head.rows, head.hash) != (count, last):
        return Verdict(
            count,
            None,
            f"체인의 끝이 맞지 않습니다: 마지막 기록 뒤의 기록이 지워졌습니다 "
            f"(the chain's head does not match its last row: rows were removed from the end; "
            f"{count} rows found, head says {head.rows if head else '?'})",
        )
    return Verdict(count, last_hash=last)
