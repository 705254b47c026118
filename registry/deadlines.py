"""What is late: open handoffs and pending decisions past their due date, across every case.

The central center's view (who is waiting on whom, since when); the per-case view is the
``overdue`` flag in the case timeline.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.models import Approval, Case, Referral
from registry.timeline import LEVELS, OPEN_REFERRAL


def overdue(session: Session, today: dt.date) -> list[dict[str, Any]]:
    """Every open referral and pending decision due before ``today``, oldest first."""
    late_referrals = session.execute(
        select(Case, Referral)
        .join(Referral, Referral.case_id == Case.id)
        .where(Case.status == "open", Referral.status.in_(OPEN_REFERRAL), Referral.due_date < today)
    ).all()
    late_decisions = session.execute(
        select(Case, Approval)
        .join(Approval, Approval.case_id == Case.id)
        .where(Case.status == "open", Approval.status == "requested", Approval.due_date < today)
    ).all()
    rows = [
        _late(case, referral.agency_id, f"{referral.step}/{referral.service}", referral, today)
        for case, referral in late_referrals
        if referral.kind == "handoff"
    ] + [
        _late(case, approval.approver_id, f"{approval.kind}/{approval.key}", approval, today)
        for case, approval in late_decisions
    ]
    return sorted(rows, key=lambda row: (row["due"], row["case"]))


def _late(case: Case, waiting_on: str, what: str, late: Referral | Approval, today: dt.date) -> dict[str, Any]:
    return {
        "case": case.ref,
        "coordinator": case.coordinator_id,
        "waiting_on": waiting_on,
        "what": what,
        "due": late.due_date,
        "days_late": (today - late.due_date).days,
        "escalation": LEVELS[late.escalation_level],
    }
