"""Case conferences (통합사례회의): when and where, who is invited, what was decided, the invitation.

A conference belongs to one step of a case. The coordinator schedules it (moving it later bumps
its ``sequence``, as iTIP requires for an updated invitation), agencies answer their invitation
referrals (``Referral.kind == "invitation"``) with the signed links of the email, and the
coordinator records the outcome: whether the case goes on, the minutes, and the role each agency
takes. The roles become the next stage's handoffs.

The minutes are kept here and only here: they describe the person, so they never reach Prefect.
Functions take an open ``Session`` and leave committing to the caller. No Prefect imports.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from icalendar import Calendar, Event, vCalAddress
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import cases
from registry.calendar import SEOUL, BusinessCalendar
from registry.catalog import SERVICES
from registry.models import Agency, Case, Conference, Referral, Staff
from registry.text import PLACE_MAX, clean_text

SERVICE = "case-conference"
INVITATION = "invitation"
DEFAULT_DURATION_MINUTES = 90
DURATION_RANGE = (15, 480)
HELD_REASON = "통합사례회의 개최 (conference held)"
PRODID = "-//yeongye//통합사례회의 case conference//KO"


@dataclass(frozen=True)
class Role:
    """What one agency took on at the conference: a handoff of the next stage."""

    agency_id: str
    service: str


def parse_start(date_text: str, time_text: str) -> dt.datetime:
    """The start as an Asia/Seoul time from "YYYY-MM-DD" and "HH:MM"; ``CaseError`` names the bad one."""
    try:
        day = dt.date.fromisoformat(date_text.strip())
    except ValueError:
        raise cases.CaseError(
            f"date (--date): '{date_text}'는 YYYY-MM-DD 형식의 날짜가 아닙니다 (not a YYYY-MM-DD date)"
        ) from None
    try:
        hour, minute = (int(part) for part in time_text.strip().split(":"))
        at = dt.time(hour, minute)
    except ValueError:
        raise cases.CaseError(
            f"time (--time): '{time_text}'는 HH:MM 형식의 시각이 아닙니다 (not an HH:MM time)"
        ) from None
    return dt.datetime.combine(day, at, SEOUL)


def check_schedule(
    starts_at: dt.datetime, duration_minutes: int, place: str, *, now: dt.datetime, days: BusinessCalendar
) -> str:
    """Validate a schedule before anything is written; returns the place, trimmed.

    The CLI calls this too, so a bad option is refused before the flow is resumed.
    """
    if starts_at.tzinfo is None:
        raise cases.CaseError("time (--time): 시간대가 없는 시각입니다 (a time zone is required)")
    if starts_at <= now:
        raise cases.CaseError(
            f"date (--date): {_local(starts_at):%Y-%m-%d %H:%M}은 이미 지난 시각입니다 (must be in the future)"
        )
    day = _local(starts_at).date()
    if not days.is_business_day(day):
        raise cases.CaseError(f"date (--date): {day.isoformat()}은 근무일이 아닙니다 (not a business day)")
    low, high = DURATION_RANGE
    if not low <= duration_minutes <= high:
        raise cases.CaseError(
            f"duration (--duration): 회의 시간은 {low}–{high}분이어야 합니다 (minutes between {low} and {high})"
        )
    place = clean_text(place.strip(), "place (--place)", PLACE_MAX)
    if not place:
        raise cases.CaseError("place (--place): 장소를 입력해야 합니다 (a place is required)")
    return place


def find(session: Session, case: Case, step: str) -> Conference | None:
    return session.scalar(select(Conference).where(Conference.case_id == case.id, Conference.step == step))


def get(session: Session, case: Case, step: str) -> Conference:
    conference = find(session, case, step)
    if conference is None:
        raise cases.CaseError(f"conference: 사례 {case.ref}의 '{step}' 회의 일정이 없습니다 (not scheduled)")
    return conference


def starts_at(conference: Conference) -> dt.datetime:
    """The start in Asia/Seoul (SQLite hands back the stored UTC time without its zone)."""
    return _local(conference.starts_at)


def ends_at(conference: Conference) -> dt.datetime:
    return starts_at(conference) + dt.timedelta(minutes=conference.duration_minutes)


def schedule(
    session: Session,
    case: Case,
    *,
    step: str,
    starts_at: dt.datetime,
    duration_minutes: int,
    place: str,
    now: dt.datetime,
    days: BusinessCalendar,
    by: str,
) -> tuple[Conference, bool]:
    """Schedule the step's conference, or move it; returns (conference, whether anything changed).

    Moving it bumps ``sequence`` and asks the invited agencies again (their earlier answers were
    for another time), as an updated iCalendar request does. The same schedule twice is a no-op.
    """
    place = check_schedule(starts_at, duration_minutes, place, now=now, days=days)
    start_utc = starts_at.astimezone(dt.UTC)
    conference = find(session, case, step)
    if conference is None:
        conference = Conference(
            case_id=case.id,
            step=step,
            starts_at=start_utc,
            duration_minutes=duration_minutes,
            place=place,
            sequence=0,
            roles=[],
        )
        session.add(conference)
        session.flush()
    else:
        if conference.recorded_at is not None:
            raise cases.CaseError(f"conference: 사례 {case.ref}의 회의 결과가 이미 기록되었습니다 (already held)")
        if (_aware(conference.starts_at), conference.duration_minutes, conference.place) == (
            start_utc,
            duration_minutes,
            place,
        ):
            return conference, False
        conference.starts_at = start_utc
        conference.duration_minutes = duration_minutes
        conference.place = place
        conference.sequence += 1
        for referral in invitations(session, case, step):
            if referral.status in ("accepted", "rejected"):
                referral.status = "requested"
                referral.reason = None
                referral.updated_at = now
            referral.due_date = _local(start_utc).date()
    cases.audit(
        session,
        case,
        by,
        "conference-scheduled",
        step=step,
        starts_at=_local(start_utc).isoformat(),
        duration_minutes=duration_minutes,
        place=place,
        sequence=conference.sequence,
    )
    return conference, True


def invite(session: Session, case: Case, conference: Conference, agency: Agency) -> Referral:
    """The agency's invitation referral (once per step); its answer is due on the conference day."""
    return cases.open_referral(
        session,
        case,
        step=conference.step,
        agency=agency,
        service=SERVICE,
        due_date=starts_at(conference).date(),
        kind=INVITATION,
    )


def invitee(session: Session, case: Case, step: str, agency_type: str) -> Agency | None:
    """The agency of a type to invite: the one already invited in this step, else the best one.

    Asking again must find the same agency, whatever Prefect still remembers; ``choose_agency``
    alone would skip it as already asked and pick the next one.
    """
    for referral in invitations(session, case, step):
        if referral.agency.type_code == agency_type:
            return referral.agency
    return cases.choose_agency(session, case, agency_type, step)


def invitations(session: Session, case: Case, step: str) -> list[Referral]:
    return [r for r in cases.referrals_in_step(session, case, step) if r.kind == INVITATION]


def check_roles(session: Session, roles: Iterable[tuple[str, str]]) -> list[Role]:
    """Each role names an active agency and a known service, one role per agency."""
    checked: list[Role] = []
    for agency_id, service in roles:
        agency = session.get(Agency, agency_id)
        if agency is None or not agency.active:
            raise cases.CaseError(
                f"role (--role): '{agency_id}'는 등록된 활동 기관이 아닙니다 (unknown or inactive agency)"
            )
        if service not in SERVICES:
            raise cases.CaseError(
                f"role (--role): '{service}'는 알 수 없는 서비스입니다 (unknown service); "
                f"예: {', '.join(sorted(SERVICES))}"
            )
        if any(role.agency_id == agency_id for role in checked):
            raise cases.CaseError(
                f"role (--role): 기관 '{agency_id}'에 역할이 두 번 주어졌습니다 (one role per agency)"
            )
        checked.append(Role(agency_id, service))
    return checked


def store_minutes(session: Session, case: Case, step: str, text: str, *, by: str) -> Conference:
    """Keep the minutes (free text about the person): written here, never passed to the flow."""
    conference = get(session, case, step)
    if conference.recorded_at is not None:
        raise cases.CaseError(f"minutes (--file): 사례 {case.ref}의 회의 결과가 이미 기록되었습니다 (already recorded)")
    conference.minutes = text
    cases.audit(session, case, by, "conference-minutes", step=step, characters=len(text))
    return conference


def record_outcome(
    session: Session,
    case: Case,
    *,
    step: str,
    proceed: bool,
    roles: Iterable[tuple[str, str]],
    reason: str,
    by: str,
    at: dt.datetime,
) -> Conference:
    """Record what the conference decided; recording it again changes nothing.

    ``held`` is True when the conference took place and the case goes on with ``roles``; False
    when the case does not go on (the reason is on the cancelled invitations and in the audit).
    """
    conference = get(session, case, step)
    if conference.recorded_at is not None:
        return conference
    checked = check_roles(session, roles)
    if not proceed and not reason.strip():
        raise cases.CaseError("reason (--reason): 진행하지 않을 때는 사유를 입력해야 합니다 (a reason is required)")
    if not proceed and checked:
        raise cases.CaseError(
            "role (--role): 진행하지 않는 사례에는 역할을 줄 수 없습니다 (no roles when not proceeding)"
        )
    conference.held = proceed
    conference.roles = [{"agency_id": role.agency_id, "service": role.service} for role in checked]
    conference.recorded_at = at
    for referral in invitations(session, case, step):
        if referral.status in cases.FINAL_STATUSES:
            continue
        if proceed:
            cases.record_answer(session, case, referral, status="completed", reason=HELD_REASON, actor=by, at=at)
        else:
            referral.status = "cancelled"
            referral.reason = reason.strip()
            referral.updated_at = at
    cases.audit(
        session,
        case,
        by,
        "conference-recorded",
        step=step,
        proceed=proceed,
        roles=conference.roles,
        reason=reason,
    )
    return conference


def uid(case_ref: str, step: str, domain: str) -> str:
    """The same UID for every version of one conference, so calendars update it rather than add one."""
    return f"{case_ref}-{step}@{domain}"


def invitation_ics(
    conference: Conference,
    *,
    case_ref: str,
    organizer: Staff,
    attendees: list[Agency],
    domain: str,
    stamp: dt.datetime,
) -> str:
    """An iCalendar REQUEST (RFC 5545/5546) for the conference, without any of the resident's data.

    The summary carries the case reference only; times are Asia/Seoul with a VTIMEZONE, so every
    client shows the same wall-clock time.
    """
    event = Event.new(
        uid=uid(case_ref, conference.step, domain),
        sequence=conference.sequence,
        stamp=stamp.astimezone(dt.UTC),
        start=starts_at(conference),
        end=ends_at(conference),
        summary=f"통합사례회의 {case_ref}",
        description=(
            f"사례 {case_ref} 통합사례회의 (integrated case conference). "
            "참석 여부는 초대 메일의 링크로 회신해 주십시오 (answer with the links in the email)."
        ),
        location=conference.place,
        organizer=vCalAddress.new(organizer.email, cn=organizer.name, role="CHAIR"),
        attendees=[
            vCalAddress.new(agency.email, cn=agency.name, role="REQ-PARTICIPANT", partstat="NEEDS-ACTION", rsvp=True)
            for agency in attendees
        ],
    )
    event.add("status", "CONFIRMED")
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", "REQUEST")
    calendar.add_component(event)
    calendar.add_missing_timezones()
    return calendar.to_ical().decode("utf-8")


def _aware(value: dt.datetime) -> dt.datetime:
    """Stored times are UTC; SQLite returns them without the zone."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _local(value: dt.datetime) -> dt.datetime:
    return _aware(value).astimezone(SEOUL)
