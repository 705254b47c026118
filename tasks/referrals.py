"""Handoffs to agencies: open a referral, tell the agency, record what it answers, find the next one.

Every task returns only references (case, step, agency ids, statuses): no personal data enters
Prefect's results.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from markupsafe import Markup
from sqlalchemy.orm import Session

from registry import calendar, cases, links, notes, outbox, programs
from registry.catalog import HEALTH_SERVICES, SERVICES, due_business_days
from registry.models import Agency, Case, Referral, Resident
from tasks import mailer, runtime
from tasks.log import logger
from tasks.retry import handoff_task
from tasks.waits import record_or_refuse
from templates import render, weekday


@dataclass(frozen=True)
class Handoff:
    """A referral as the flow sees it."""

    referral_id: int
    step: str
    agency_id: str
    agency_type: str
    service: str


def _handoff(referral: Referral) -> Handoff:
    return Handoff(referral.id, referral.step, referral.agency_id, referral.agency.type_code, referral.service)


@dataclass(frozen=True)
class Terms:
    """What a referral asks beyond the service: a due date the law fixes, the outcomes to report.

    ``due`` (ISO date) replaces the agency type's business-day default; ``legal_basis`` names the
    provision that sets it, so the deadline sweep warns before it runs out and times it out on its day.
    ``due_at`` (ISO date-time) is a life-safety step's due time: its ladder runs in hours.
    """

    due: str = ""
    legal_basis: str = ""
    outcomes: tuple[str, ...] = ()
    # ISO date-time: the step is a life-safety one, its clock in hours on every day (overrides ``due``).
    due_at: str = ""


DEFAULT_TERMS = Terms()


@dataclass(frozen=True)
class Notice:
    """A written notice the law requires (e.g. 정신건강복지법 §50⑥), carried in the referral email.

    The agency that must give it (hospital, district office) receives its text, rendered from
    ``templates/<language>/<template>``. Only codes, ISO dates and an agency id travel through
    Prefect; the text holds what the provision requires and nothing about the person.
    """

    template: str  # "notice_guardian" | "notice_admission"
    provision: str  # e.g. "정신건강복지법 §50⑥"
    reason: str  # a code the template words, e.g. "emergency-admission"
    first_day: str
    last_day: str
    place: str = ""  # agency id of the hospital; empty: the agency the email goes to


@handoff_task(name="open-referral", task_run_name="{step}-open-{agency_type}")
def open_referral(
    case_ref: str,
    step: str,
    agency_type: str,
    service: str,
    due_months: int = 0,
    turn: int = 0,
    terms: Terms = DEFAULT_TERMS,
) -> Handoff | None:
    """Refer the case to the best agency of a type not yet asked in this step (None if none is left).

    Idempotent in the registry, not only through Prefect's cache: a run killed after this task
    committed but before its result was stored finds the same referral when it runs again.

    ``due_months`` is for follow-ups planned months ahead; otherwise the agency has its type's
    number of business days to answer (catalog default, changeable in settings). ``turn`` tells
    apart the referrals made after successive rejections, which would otherwise share one cache key.
    """
    if service not in SERVICES:
        raise cases.CaseError(f"service: unknown service '{service}'")
    with runtime.transaction() as session:
        case = cases.find_case(session, case_ref)
        referral = cases.open_referral_of_type(session, case, step, agency_type, service)
        if referral is None:
            agency = cases.choose_agency(session, case, agency_type, step)
            if agency is None:
                return None
            referral = _open(session, case, step, agency, service, terms, due_months)
        if due_months:
            cases.plan_follow_up(session, case, key=step, referral=referral)
        return _handoff(referral)


@handoff_task(name="refer-to-named-agency", task_run_name="{step}-open-{agency_id}")
def refer_to_agency(
    case_ref: str, step: str, agency_id: str, service: str, terms: Terms = DEFAULT_TERMS
) -> Handoff | None:
    """Refer to an agency the coordinator named (None if no such active agency exists)."""
    with runtime.transaction() as session:
        case = cases.find_case(session, case_ref)
        agency = session.get(Agency, agency_id)
        if agency is None or not agency.active:
            return None
        return _handoff(_open(session, case, step, agency, service, terms))


def _open(
    session: Session, case: Case, step: str, agency: Agency, service: str, terms: Terms, due_months: int = 0
) -> Referral:
    due = dt.date.fromisoformat(terms.due) if terms.due else _due_date(session, agency, due_months)
    return cases.open_referral(
        session,
        case,
        step=step,
        agency=agency,
        service=service,
        due_date=due,
        legal_basis=terms.legal_basis or None,
        outcomes=list(terms.outcomes),
        due_at=dt.datetime.fromisoformat(terms.due_at) if terms.due_at else None,
    )


def _due_date(session: Session, agency: Agency, due_months: int = 0) -> dt.date:
    today = calendar.today(runtime.clock())
    days = runtime.business_calendar(session)
    if due_months:
        return days.add_months(today, due_months)
    return days.add_business_days(today, due_business_days(agency.type_code, runtime.settings().due_business_days))


@handoff_task(name="due-in-hours", task_run_name="{step}-due-in-{hours}h")
def due_in_hours(case_ref: str, step: str, hours: int) -> dt.datetime:
    """Due time of a life-safety step, ``hours`` from now on every day (weekends and holidays count).

    A task, so the time is read once and replayed unchanged when the case resumes later; ``step``
    tells apart the calls of one run.
    """
    return calendar.hours_later(runtime.clock().now(), hours)


@handoff_task(name="due-in-months", task_run_name="{step}-due-in-{months}m")
def due_in_months(case_ref: str, step: str, months: int) -> dt.date:
    """Due date of a step answered months from now (e.g. a vacancy from a waiting list), read once like
    ``due_in_hours``; a date that falls on a day off moves to the next business day."""
    with runtime.transaction() as session:
        business_days = runtime.business_calendar(session)
    return business_days.add_months(calendar.today(runtime.clock()), months)


@handoff_task(name="notify-agency", task_run_name="{handoff.step}-notify-{handoff.agency_id}")
def notify_agency(case_ref: str, handoff: Handoff, notice: Notice | None = None) -> str:
    """Email the agency about its referral, through the outbox (sent once, whatever replays).

    A ``notice`` the agency must hand on is included only where a basis covers the agency.
    """
    settings = runtime.settings()
    language = settings.language
    with runtime.transaction() as session:
        case = cases.find_case(session, case_ref)
        referral = session.get(Referral, handoff.referral_id)
        assert referral is not None
        agency = referral.agency
        basis = cases.disclosure_basis(session, case, agency.type_code)
        resident = case.resident if basis else None
        health = referral.service in HEALTH_SERVICES
        links = answer_links(case.ref, referral)
        subject, text, html = render(
            "referral",
            language,
            case_ref=case.ref,
            agency_name=agency.name,
            complex_name=case.complex.name,
            service=cases.shown_service(session, case, referral, language),
            step=referral.step if basis or not health else "-",
            due_date=referral.due_date.isoformat(),
            due_weekday=weekday(referral.due_date, language),
            resident=resident,
            basis=basis,
            complex_wide=case.resident_ref is None,
            programme=programs.kind_of(case).name(language) if case.program_kind else "",
            notice=_render_notice(session, notice, agency, language) if basis and notice else None,
            links=links,
            coordinator_name=case.coordinator.name,
            coordinator_email=case.coordinator.email,
        )
        message, created = outbox.enqueue(
            session,
            case,
            key=outbox.idempotency_key(case.ref, referral.step, agency.id),
            agency_id=agency.id,
            draft=outbox.Draft(agency.email, subject, text, html, reply_to=case.coordinator.email),
            domain=settings.mail_from.rpartition("@")[2] or "yeongye.local",
        )
        if basis and created:
            cases.audit(
                session,
                case,
                case.coordinator_id,
                "disclosure",
                agency=agency.id,
                fields=["name", "building", "unit", "phone"]
                + (["health"] if health else [])
                + (["notice"] if notice else []),
                basis=basis,
            )
        outbox_id = message.id
    status = mailer.deliver(outbox_id)
    logger(case_ref, handoff.step).info("agency-notified", agency=handoff.agency_id, outbox_id=outbox_id, status=status)
    return status


def _render_notice(session: Session, notice: Notice, agency: Agency, language: str) -> dict[str, str]:
    """The notice's title, plain text and HTML, for the referral email to quote."""
    place = session.get(Agency, notice.place) if notice.place else agency
    first, last = dt.date.fromisoformat(notice.first_day), dt.date.fromisoformat(notice.last_day)
    title, text, html = render(
        notice.template,
        language,
        provision=notice.provision,
        reason=notice.reason,
        first_day=notice.first_day,
        first_weekday=weekday(first, language),
        last_day=notice.last_day,
        last_weekday=weekday(last, language),
        place=place.name if place else notice.place,
    )
    return {"title": title, "text": text, "html": Markup(html)}


def answer_links(case_ref: str, referral: Referral) -> dict[str, str]:
    """Signed links to accept, decline or report done, good until some days after the due date."""
    settings = runtime.settings()
    secret = links.load_secret(settings.link_secret_file)
    expires = dt.datetime.combine(
        referral.due_date + dt.timedelta(days=settings.link_valid_days), dt.time(23, 59), calendar.SEOUL
    )
    claims = {purpose: links.Claim(case_ref, referral.id, purpose, expires) for purpose in links.PURPOSES}
    base = f"{settings.answer_base_url}/answer"
    return {purpose: f"{base}/{links.sign(claim, secret)}" for purpose, claim in claims.items()}


def disclosable_resident(session: Session, case: Case, agency: Agency) -> Resident | None:
    """The resident's details, only if written consent or a recorded legal basis covers this kind of agency."""
    return case.resident if cases.disclosure_basis(session, case, agency.type_code) else None


@handoff_task(name="record-legal-basis", task_run_name="legal-basis-{basis}")
def record_legal_basis(case_ref: str, agency_types: list[str], basis: str) -> str:
    """Record the law that lets these agency types learn about the resident in this case (e.g. §50).

    The flow records it, following the decision the law hangs on (recorded in its signer's name),
    so the basis is the flow's act, not a person's.
    """
    with runtime.transaction() as session:
        case = cases.find_case(session, case_ref)
        cases.record_disclosure_basis(session, case, agency_types=agency_types, basis=basis, by="flow")
    return basis


@handoff_task(name="record-answer", task_run_name="{step}-answer-{agency_id}", added_inputs=("referral_id", "act"))
def record_answer(
    case_ref: str,
    step: str,
    agency_id: str,
    status: str,
    reason_note: int | None,
    key: str,
    outcome: str = "",
    referral_id: int | None = None,
    act: int | None = None,
) -> str:
    """Apply an agency's answer, in the name of whoever signed it (``act``: the agency's link, or
    the member of staff who took it by phone); returns the referral's status afterwards, or "invalid".

    ``key`` names the wait the answer came through, so two identical answers given at
    different waits are recorded as two events. ``referral_id`` (sent by an answer link) must be
    the referral of this step and agency: an answer meant for another referral is invalid.
    The reason is the registry note ``reason_note``, which must be this case's.
    Invalid input is audited and changes nothing; the caller asks again.
    """

    def write(session: Session, case: Case, by: str) -> str:
        reason = notes.text_of(session, case, reason_note, notes.REASON, "reason_note (--reason)")
        referral = cases.find_referral(session, case, step, agency_id)
        if referral is None:
            return "unknown"
        if referral_id is not None and referral.id != referral_id:
            raise cases.CaseError(
                f"referral_id: 연계 {referral_id}는 이 단계({step})의 {agency_id} 연계가 아닙니다 "
                "(the answer is for another referral)"
            )
        cases.record_answer(
            session,
            case,
            referral,
            status=status,
            reason=reason,
            actor=by,
            at=runtime.clock().now(),
            outcome=outcome,
        )
        return referral.status

    recorded = record_or_refuse(case_ref, act, key, write)
    if recorded is None:
        return "invalid"
    logger(case_ref, step).info("answer-recorded", agency=agency_id, status=recorded, wait=key)
    return recorded
