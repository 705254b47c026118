"""Taking one rung of the deadline ladder (registry.escalation): an email, or a timed-out answer.

A rung is recorded as taken only after its email went out, so a sweep that fails halfway is
simply repeated by the next one; the outbox key per (referral or decision, rung, recipient)
keeps each message single whatever repeats.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from registry import calendar, cases, outbox
from registry.catalog import service_label
from registry.escalation import (
    COORDINATOR,
    REMINDER,
    SUPERVISOR,
    TIMED_OUT,
    Escalation,
    due_escalations,
    hour_rungs,
)
from registry.models import Approval, Referral, Staff
from registry.timeline import LEVELS
from tasks import mailer, runtime
from tasks.approvals import kind_label
from tasks.log import logger
from tasks.referrals import answer_links
from tasks.retry import handoff_task
from templates import render, weekday
from yeongye import steering

# Who answers "timed-out" for an agency whose final deadline passed: the sweep, named as itself.
SWEEP_ACTOR = "deadline-sweep"

_RUNG_LABELS = {
    "ko": {
        "coordinator": "담당 주거복지사에게 알림",
        "supervisor": "슈퍼바이저 보고",
        "timed-out": "연계 종료(기한 초과)",
    },
    "en": {"coordinator": "coordinator told", "supervisor": "reported to supervisor", "timed-out": "timed out"},
}


@handoff_task(name="find-escalations", task_run_name="find-escalations")
def find_escalations() -> list[Escalation]:
    """The rungs reached now and not yet taken, across every open case."""
    settings = runtime.settings()
    with runtime.transaction() as session:
        return due_escalations(session, runtime.clock().now(), runtime.business_calendar(session), settings.ladder)


@handoff_task(
    name="escalate", task_run_name="{escalation.case_ref}-{escalation.target}-{escalation.id}-{escalation.level}"
)
def escalate(escalation: Escalation) -> str:
    """Take one rung; returns what happened ("reminder", "coordinator", ..., "deferred" or "answered")."""
    if escalation.target == "referral" and escalation.level == TIMED_OUT:
        timed_out = _time_out(escalation)
        if isinstance(timed_out, str):
            return timed_out
        outbox_ids = timed_out
    else:
        with runtime.transaction() as session:
            outbox_ids = _enqueue_notices(session, escalation)
    for outbox_id in outbox_ids:
        mailer.deliver(outbox_id)
    with runtime.transaction() as session:
        row: Referral | Approval | None = (
            session.get(Referral, escalation.id)
            if escalation.target == "referral"
            else session.get(Approval, escalation.id)
        )
        assert row is not None
        row.escalation_level = max(row.escalation_level, escalation.level)
        cases.audit(
            session,
            cases.find_case(session, escalation.case_ref),
            "deadline-sweep",
            "escalated",
            target=escalation.target,
            id=escalation.id,
            level=LEVELS[escalation.level],
        )
    level = LEVELS[escalation.level]
    logger(escalation.case_ref, escalation.target).info("escalated", id=escalation.id, level=level)
    return level


def _time_out(escalation: Escalation) -> list[int] | str:
    """Time the referral out; returns the withdrawal notices to send, or why nothing was done.

    The sweep's list is a snapshot, and the agency may answer at this very moment. The referral's
    own wait decides first: the sweep resumes it with "timed-out" exactly as an answer link would
    (only that wait, for that referral), and only one of the two resumes it. The loser changes
    nothing: the sweep defers to its next run, or the agency's page says its answer was not taken.
    Then one transaction re-reads the referral, records the timeout only if it is still open
    (compare and set, ``cases.record_answer``) and writes the notices with it: an agency whose
    answer stood is never told that its request was withdrawn. The flow's own code then decides
    what follows (the next agency of the type, or the coordinator names one).
    """
    try:
        steering.answer_referral(
            runtime.database(),
            escalation.case_ref,
            escalation.id,
            status="timed-out",
            by=SWEEP_ACTOR,
            settle_seconds=0,
        )
    except steering.SteeringError as error:
        logger(escalation.case_ref, "deadline").info("timeout-deferred", referral=escalation.id, why=str(error))
        return "deferred"
    with runtime.transaction() as session:
        case = cases.find_case(session, escalation.case_ref)
        referral = session.get(Referral, escalation.id)
        assert referral is not None
        cases.record_answer(
            session, case, referral, status="timed-out", reason="", actor=SWEEP_ACTOR, at=runtime.clock().now()
        )
        if referral.status != "failed":  # the agency's answer was recorded first: it stands
            logger(escalation.case_ref, "deadline").info("timeout-lost", referral=escalation.id)
            return "answered"
        return _enqueue_notices(session, escalation)


def _enqueue_notices(session: Session, escalation: Escalation) -> list[int]:
    """Write the rung's emails to the outbox: who hears of it depends on the rung and the clock."""
    settings = runtime.settings()
    language = settings.language
    case = cases.find_case(session, escalation.case_ref)
    coordinator = _Recipient(case.coordinator.id, case.coordinator.name, case.coordinator.email)
    supervisor = _Recipient(case.supervisor.id, case.supervisor.name, case.supervisor.email)
    if escalation.target == "referral":
        referral = session.get(Referral, escalation.id)
        assert referral is not None
        agency = referral.agency
        to_agency = _Recipient(agency.id, agency.name, agency.email, agency_id=agency.id)
        legal_basis = referral.legal_basis or ""
        if referral.due_at is not None:  # a life-safety clock: the coordinator hears of every rung
            ladder = {
                REMINDER: [to_agency, coordinator],
                COORDINATOR: [coordinator, to_agency],
                TIMED_OUT: [to_agency, coordinator, supervisor],
            }
        elif legal_basis:
            ladder = {
                REMINDER: [to_agency, coordinator],
                COORDINATOR: [coordinator],
                TIMED_OUT: [coordinator, supervisor],
            }
        else:
            ladder = {REMINDER: [to_agency], COORDINATOR: [coordinator], TIMED_OUT: [to_agency]}
        recipients = ladder.get(escalation.level, [supervisor])
        what_for_staff = service_label(referral.service, language)
        what_for_agency = cases.shown_service(session, case, referral, language)
        waiting_on, due, subject_key = agency.name, referral.due_date, f"{referral.step}-{referral.agency_id}"
        due_at = referral.due_at.replace(tzinfo=referral.due_at.tzinfo or dt.UTC) if referral.due_at else None
        links = answer_links(case.ref, referral) if escalation.level == REMINDER else None
    else:
        approval = session.get(Approval, escalation.id)
        assert approval is not None
        approver = session.get(Staff, approval.approver_id)
        assert approver is not None
        ladder = {REMINDER: [_Recipient(approver.id, approver.name, approver.email)], COORDINATOR: [coordinator]}
        recipients = ladder.get(escalation.level, [supervisor])
        what_for_staff = what_for_agency = kind_label(approval.kind, language)
        waiting_on, due, subject_key, links, legal_basis = approver.name, approval.due_date, approval.key, None, ""
        due_at = None
    level = LEVELS[escalation.level]
    outbox_ids = []
    for recipient in recipients:
        subject, text, html = render(
            "deadline",
            language,
            level=level,
            legal_basis=legal_basis,
            recipient_name=recipient.name,
            case_ref=case.ref,
            complex_name=case.complex.name,
            what=what_for_agency if recipient.agency_id else what_for_staff,
            waiting_on=waiting_on,
            due_date=f"{due_at.astimezone(calendar.SEOUL):%Y-%m-%d %H:%M}" if due_at else due.isoformat(),
            due_weekday=weekday(due, language),
            days_late=max((calendar.today(runtime.clock()) - due).days, 0),
            life_safety=due_at is not None,
            next_rung=_next_rung(session, escalation, due, legal_basis, language, due_at),
            links=links if recipient.agency_id else None,
            coordinator_name=case.coordinator.name,
            coordinator_email=case.coordinator.email,
        )
        message, _ = outbox.enqueue(
            session,
            case,
            key=outbox.idempotency_key(case.ref, f"{subject_key}-{level}", recipient.id),
            agency_id=recipient.agency_id,
            draft=outbox.Draft(recipient.email, subject, text, html, reply_to=case.coordinator.email),
            domain=settings.mail_from.rpartition("@")[2] or "yeongye.local",
        )
        outbox_ids.append(message.id)
    return outbox_ids


@dataclass(frozen=True)
class _Recipient:
    id: str
    name: str
    email: str
    agency_id: str | None = None


def _next_rung(
    session: Session,
    escalation: Escalation,
    due: dt.date,
    legal_basis: str,
    language: str,
    due_at: dt.datetime | None = None,
) -> dict[str, str] | None:
    """What happens next and when, so each notice says how long there is left (to the minute on a
    life-safety clock)."""
    last = TIMED_OUT if escalation.target == "referral" else SUPERVISOR
    if escalation.level >= last:
        return None
    name = LEVELS[escalation.level + 1]
    if due_at is not None:
        return {"label": _RUNG_LABELS[language][name], "date": f"{hour_rungs(due_at)[name]:%Y-%m-%d %H:%M}"}
    dates = runtime.settings().ladder.dates(due, runtime.business_calendar(session), legal=bool(legal_basis))
    return {"label": _RUNG_LABELS[language][name], "date": dates[name].isoformat()}
