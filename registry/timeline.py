"""A case's history as plain data: what the CLI prints, and what the Prefect artifact is made from.

It carries references, agencies, statuses and dates, and never the resident's details. It also
carries what people wrote (reasons, a conference's place, email subjects and errors) for the CLI,
which reads the registry anyway; those are free text, possibly about the person, so the Prefect
artifact (``tasks.case._markdown``) shows codes, counts and "사유 있음 (reason recorded)" only.
A referral's due date that the law sets carries its basis (e.g. "정신건강복지법 §50③, 행정기본법 §6②
초일 산입"), so whoever reads the case sees how the date was counted; a life-safety step carries its
due time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import conferences, mental_health
from registry.calendar import SEOUL
from registry.models import Approval, AuditEntry, Case, Conference, FollowUp, OutboxMessage, Referral

OPEN_REFERRAL = ("requested", "received", "accepted", "in-progress", "on-hold")
# Rungs of the deadline ladder (registry.escalation), by ``escalation_level``.
LEVELS = ("none", "reminder", "coordinator", "supervisor", "timed-out")


def case_timeline(session: Session, case: Case) -> dict[str, Any]:
    referrals = session.scalars(select(Referral).where(Referral.case_id == case.id).order_by(Referral.id)).all()
    approvals = session.scalars(select(Approval).where(Approval.case_id == case.id).order_by(Approval.id)).all()
    emails = session.scalars(
        select(OutboxMessage).where(OutboxMessage.case_id == case.id).order_by(OutboxMessage.id)
    ).all()
    follow_ups = session.scalars(select(FollowUp).where(FollowUp.case_id == case.id).order_by(FollowUp.id)).all()
    waiting = [
        {
            "kind": "answer",
            "step": r.step,
            "agency": r.agency_id,
            "due": r.due_date.isoformat(),
            "escalation": LEVELS[r.escalation_level],
        }
        for r in referrals
        if r.status in OPEN_REFERRAL and r.kind == "handoff"
    ] + [
        {
            "kind": "decision",
            "key": a.key,
            "approver": a.approver_id,
            "due": a.due_date.isoformat(),
            "escalation": LEVELS[a.escalation_level],
        }
        for a in approvals
        if a.status == "requested"
    ]
    if case.stage == mental_health.SCENE_STAGE and case.status == "open":  # the coordinator has yet to record it
        opened = case.opened_at if case.opened_at.tzinfo is None else case.opened_at.astimezone(SEOUL)  # SQLite: Seoul
        waiting.append({"kind": "scene", "key": "on-scene", "due": opened.date().isoformat(), "escalation": "none"})
    return {
        "case": case.ref,
        "intervention": case.intervention,
        "program_kind": case.program_kind,  # which partner programme, for a programme case
        "complex": case.complex_code,
        "status": case.status,
        "stage": case.stage,
        "outcome": case.outcome,
        "coordinator": case.coordinator_id,
        "opened_at": case.opened_at.isoformat(),
        "closed_at": case.closed_at.isoformat() if case.closed_at else None,
        "flow_run_id": case.flow_run_id,
        "referrals": [
            {
                "step": r.step,
                "agency": r.agency_id,
                "service": r.service,
                "status": r.status,
                "reason": r.reason,
                "outcome": r.outcome,
                "due": r.due_date.isoformat(),
                "legal_basis": r.legal_basis,
                "due_at": _seoul(r.due_at) if r.due_at else None,
                "kind": r.kind,
            }
            for r in referrals
        ],
        "approvals": [
            {
                "key": a.key,
                "kind": a.kind,
                "approver": a.approver_id,
                "status": a.status,
                "reason": a.reason,
                "due": a.due_date.isoformat(),
            }
            for a in approvals
        ],
        "follow_ups": [{"key": f.key, "due": f.due_date.isoformat()} for f in follow_ups],
        "conferences": _conferences(session, case, referrals),
        # An emergency admission's on-scene record: times, agencies, the hold's end (the last one recorded).
        "on_scene": next(reversed(mental_health.scene_records(session, case)), None),
        "emails": [
            {
                "id": m.id,
                "to_agency": m.agency_id,
                "subject": m.subject,
                "status": m.status,
                "attempts": m.attempts,
                "last_error": m.last_error,
            }
            for m in emails
        ],
        "linked_cases": _linked_cases(session, case),
        "waiting_for": waiting,
    }


def _linked_cases(session: Session, case: Case) -> dict[str, Any]:
    """The case that opened this one (a flow's follow-on), and the cases this one opened."""
    opened = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.case_id == case.id, AuditEntry.action == "follow-on")
        .order_by(AuditEntry.id)
    )
    by = case.opened_by or ""
    return {
        "opened_by": by.removeprefix("case:") if by.startswith("case:") else None,
        "opened": [{"case": e.detail["follow_on"], "intervention": e.detail["intervention"]} for e in opened],
    }


def _conferences(session: Session, case: Case, referrals: Sequence[Referral]) -> list[dict[str, Any]]:
    """When and where each conference meets and who answered what; never the minutes."""
    rows = session.scalars(select(Conference).where(Conference.case_id == case.id).order_by(Conference.id)).all()
    return [
        {
            "step": c.step,
            "starts_at": conferences.starts_at(c).isoformat(),
            "ends_at": conferences.ends_at(c).isoformat(),
            "place": c.place,
            "sequence": c.sequence,
            "held": c.held,
            "roles": c.roles,
            "invitations": [
                {"agency": r.agency_id, "status": r.status, "reason": r.reason}
                for r in referrals
                if r.kind == conferences.INVITATION and r.step == c.step
            ],
        }
        for c in rows
    ]


def _seoul(value: dt.datetime) -> str:
    """A stored due time in Seoul, to the minute (stored in UTC; SQLite gives it back without a zone)."""
    return f"{value.replace(tzinfo=value.tzinfo or dt.UTC).astimezone(SEOUL):%Y-%m-%d %H:%M}"
