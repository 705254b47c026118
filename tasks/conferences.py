"""Case conferences (통합사례회의) as a flow step: schedule, invite, record the outcome, hand off roles.

``hold_conference`` is the verb flows use. The coordinator schedules through a form, each invited
agency gets an email with a calendar invitation and accept/decline links (the flow does not wait
for these answers; the answer page records them), and the coordinator records the outcome. The
roles decided there come back as a plan whose ``needs()`` are the next stage's handoffs.

The minutes never pass through Prefect: ``yeongye conference minutes`` writes them to the registry
before it resumes the flow, and the form carries only references (agency ids, services).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from registry import cases, conferences, notes, outbox
from registry.models import Agency, Case, Referral
from tasks import mailer, runtime, waits
from tasks.approvals import record_coordinator_decision
from tasks.case import enter_stage
from tasks.handoffs import Need, ask_person
from tasks.log import logger
from tasks.referrals import Handoff, answer_links, disclosable_resident
from tasks.retry import handoff_task
from tasks.waits import record_or_refuse
from templates import render, weekday

RESCHEDULED = "일정 변경 (rescheduled)"


@dataclass(frozen=True)
class Scheduled:
    """A conference as the flow sees it: which version of the invitation to send, and the day."""

    conference_id: int
    sequence: int
    day: str


@dataclass(frozen=True)
class Role:
    """A handoff the conference decided on."""

    agency_id: str
    agency_type: str
    service: str


@dataclass(frozen=True)
class ConferencePlan:
    """What the conference decided: whether the case goes on, and who does what next."""

    step: str
    proceed: bool
    roles: tuple[Role, ...]

    def needs(self) -> list[Need]:
        """The roles as the next stage's handoffs, each to the agency the conference named."""
        return [Need(role.agency_type, role.service, role.agency_id) for role in self.roles]


def hold_conference(case_ref: str, step: str, invitees: list[Need]) -> ConferencePlan:
    """Schedule the conference, invite one agency per invitee, and wait for the outcome.

    Choosing to reschedule on the outcome form asks for the new time and sends every invited
    agency an updated invitation (same UID, higher SEQUENCE).
    """
    enter_stage(case_ref, step)
    invited: list[Handoff] | None = None
    round_ = 0
    while True:
        round_ += 1
        scheduled = _schedule(case_ref, step, round_)
        if invited is None:  # the same agencies for every version of the invitation
            opened = [open_invitation(case_ref, step, n.agency_type, n.agency_id or "") for n in invitees]
            invited = [h for h in opened if h is not None]
        for handoff in invited:  # one task at a time, as in hand_off
            send_invitation(case_ref, handoff, scheduled.sequence)
        plan = _outcome(case_ref, step, round_, scheduled)
        if plan is not None:
            return plan


def _schedule(case_ref: str, step: str, round_: int) -> Scheduled:
    """Ask the coordinator when and where; an invalid answer is audited and asked again."""
    approval_key = waits.wait_key("schedule", step, round_)

    def scheduled(form: waits.ConferenceSchedule, wait: str) -> Scheduled | waits.Again:
        stored = schedule_conference(
            case_ref, step, form.date, form.time, form.place_note, form.duration_minutes, approval_key, wait, form.act
        )
        return waits.AGAIN if stored is None else stored

    return ask_person(
        case_ref,
        approval_key,
        "conference-schedule",
        "coordinator",
        waits.ConferenceSchedule,
        f"**{case_ref}** · 통합사례회의 일시와 장소를 정하세요 (schedule the case conference): "
        "근무일, 서울 시각. 명령줄: `yeongye conference schedule`",
        scheduled,
    )


def _outcome(case_ref: str, step: str, round_: int, scheduled: Scheduled) -> ConferencePlan | None:
    """Wait for the outcome; None when the coordinator chose to reschedule instead."""
    approval_key = waits.wait_key("minutes", step, round_)

    def recorded(form: waits.ConferenceMinutes, wait: str) -> ConferencePlan | None | waits.Again:
        if form.reschedule:
            record_coordinator_decision(case_ref, approval_key, False, RESCHEDULED, wait, act=form.act)
            return None
        roles = [{"agency_id": role.agency_id, "service": role.service} for role in form.roles]
        plan = record_outcome(case_ref, step, form.proceed, roles, form.reason_note, approval_key, wait, form.act)
        return waits.AGAIN if plan is None else plan

    return ask_person(
        case_ref,
        approval_key,
        "conference-minutes",
        "coordinator",
        waits.ConferenceMinutes,
        f"**{case_ref}** · 통합사례회의 결과와 기관별 역할을 기록하세요 (record the outcome and roles). "
        "회의록 본문은 여기에 쓰지 말고 `yeongye conference minutes --file`로 등록하세요 "
        "(the minutes text goes to the registry, never into this form).",
        recorded,
        due_after=scheduled.day,
    )


@handoff_task(name="schedule-conference", task_run_name="{wait}-schedule", added_inputs=("act",))
def schedule_conference(
    case_ref: str,
    step: str,
    date: str,
    time: str,
    place_note: int | None,
    duration_minutes: int,
    approval_key: str,
    wait: str,
    act: int | None = None,
) -> Scheduled | None:
    """Validate and store the schedule as its signer's (``act``), and close the request for it;
    None (audited) if invalid.

    The place is the registry note ``place_note`` (it may be the resident's home).
    """

    def write(session: Session, case: Case, by: str) -> Scheduled:
        now = runtime.clock().now()
        place = notes.text_of(session, case, place_note, notes.PLACE, "place_note (--place)")
        conference, _changed = conferences.schedule(
            session,
            case,
            step=step,
            starts_at=conferences.parse_start(date, time),
            duration_minutes=duration_minutes,
            place=place,
            now=now,
            days=runtime.business_calendar(session),
            by=by,
        )
        approval = cases.find_approval(session, case, approval_key)
        cases.decide(session, case, approval, approved=True, reason="", by=by, at=now)
        return Scheduled(conference.id, conference.sequence, conferences.starts_at(conference).date().isoformat())

    scheduled = record_or_refuse(case_ref, act, wait, write)
    if scheduled is not None:
        logger(case_ref, step).info("conference-scheduled", sequence=scheduled.sequence, day=scheduled.day)
    return scheduled


@handoff_task(name="open-invitation", task_run_name="{step}-invite-{agency_type}")
def open_invitation(case_ref: str, step: str, agency_type: str, agency_id: str = "") -> Handoff | None:
    """Invite the best agency of a type (or the named one); None if there is none to invite."""
    with runtime.transaction() as session:
        case = cases.find_case(session, case_ref)
        conference = conferences.get(session, case, step)
        agency = session.get(Agency, agency_id) if agency_id else conferences.invitee(session, case, step, agency_type)
        if agency is None or not agency.active:
            return None
        referral = conferences.invite(session, case, conference, agency)
        return Handoff(referral.id, referral.step, referral.agency_id, agency.type_code, referral.service)


@handoff_task(name="send-invitation", task_run_name="{handoff.step}-invitation-{handoff.agency_id}-{sequence}")
def send_invitation(case_ref: str, handoff: Handoff, sequence: int) -> str:
    """Email one agency its invitation with the calendar request, once per version of the schedule."""
    settings = runtime.settings()
    language = settings.language
    domain = settings.mail_from.rpartition("@")[2] or "yeongye.local"
    with runtime.transaction() as session:
        case = cases.find_case(session, case_ref)
        referral = session.get(Referral, handoff.referral_id)
        assert referral is not None
        conference = conferences.get(session, case, referral.step)
        agency = referral.agency
        start, end = conferences.starts_at(conference), conferences.ends_at(conference)
        resident = disclosable_resident(session, case, agency)
        links = answer_links(case.ref, referral)
        subject, text, html = render(
            "conference",
            language,
            case_ref=case.ref,
            agency_name=agency.name,
            complex_name=case.complex.name,
            date=start.date().isoformat(),
            weekday=weekday(start.date(), language),
            start_time=f"{start:%H:%M}",
            end_time=f"{end:%H:%M}",
            place=conference.place,
            sequence=conference.sequence,
            resident=resident,
            links={"accept": links["accept"], "decline": links["decline"]},
            coordinator_name=case.coordinator.name,
            coordinator_email=case.coordinator.email,
        )
        ics = conferences.invitation_ics(
            conference,
            case_ref=case.ref,
            organizer=case.coordinator,
            attendees=[r.agency for r in conferences.invitations(session, case, referral.step)],
            domain=domain,
            stamp=runtime.clock().now(),
        )
        # The first invitation is keyed by the step, like any handoff; each update gets its own key.
        step_key = referral.step if conference.sequence == 0 else f"{referral.step}-update-{conference.sequence}"
        message, created = outbox.enqueue(
            session,
            case,
            key=outbox.idempotency_key(case.ref, step_key, agency.id),
            agency_id=agency.id,
            draft=outbox.Draft(agency.email, subject, text, html, reply_to=case.coordinator.email, calendar_ics=ics),
            domain=domain,
        )
        if resident and created:
            cases.audit(
                session,
                case,
                case.coordinator_id,
                "disclosure",
                agency=agency.id,
                fields=["name", "building", "unit", "phone"],
                basis="written-consent",
            )
        outbox_id = message.id
    status = mailer.deliver(outbox_id)
    logger(case_ref, handoff.step).info("invitation-sent", agency=handoff.agency_id, outbox_id=outbox_id, status=status)
    return status


@handoff_task(name="record-conference", task_run_name="{wait}-outcome", added_inputs=("act",))
def record_outcome(
    case_ref: str,
    step: str,
    proceed: bool,
    roles: list[dict[str, str]],
    reason_note: int | None,
    approval_key: str,
    wait: str,
    act: int | None = None,
) -> ConferencePlan | None:
    """Record the outcome and roles as their signer's (``act``), close the invitations and the
    request; None (audited) if invalid.

    The reason (required when the case does not go on) is the registry note ``reason_note``.
    """

    def write(session: Session, case: Case, by: str) -> ConferencePlan:
        now = runtime.clock().now()
        reason = notes.text_of(session, case, reason_note, notes.REASON, "reason_note (--reason)")
        conference = conferences.record_outcome(
            session,
            case,
            step=step,
            proceed=proceed,
            roles=[(role.get("agency_id", ""), role.get("service", "")) for role in roles],
            reason=reason,
            by=by,
            at=now,
        )
        approval = cases.find_approval(session, case, approval_key)
        held = bool(conference.held)
        cases.decide(session, case, approval, approved=held, reason=reason, by=by, at=now)
        return ConferencePlan(step, held, tuple(_role(session, role) for role in conference.roles))

    plan = record_or_refuse(case_ref, act, wait, write)
    if plan is not None:
        logger(case_ref, step).info("conference-recorded", proceed=plan.proceed, roles=len(plan.roles))
    return plan


def _role(session: Session, role: dict[str, str]) -> Role:
    agency = session.get(Agency, role["agency_id"])
    assert agency is not None  # conferences.check_roles made sure it exists
    return Role(agency.id, agency.type_code, role["service"])
