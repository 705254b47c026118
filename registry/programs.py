"""The rules of a partner programme: a group programme for a complex, planned and run with partner agencies.

The 2024 study's complexes run several kinds (``KINDS``): a monthly 마음건강 교육 with the
정신건강복지센터, outings and train trips for isolated households, cultural activities, a weekly
meal with a private donor, and the 어버이날 event with the public bodies and residents' groups.
A programme case belongs to a complex, not to one resident. Who was invited, who enrolled and who
came to which session is personal data: it is kept here, written by the CLI and the programme's
tasks, and only counts leave the registry. Functions take an open ``Session`` and leave committing
to the caller; the ones a replayed task may call twice are idempotent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.calendar import BusinessCalendar
from registry.cases import GROUP_INTERVENTIONS, CaseError, audit, find_case
from registry.models import Agency, Case, ProgramAttendance, ProgramParticipant, ProgramSession, Referral, Resident

# The intervention every partner programme runs as; its kind says which programme it is.
PROGRAM = "program"
# The step in which the partner agencies plan the programme with the complex; those that complete it are
# its partners.
PLANNING_STEP = "planning"
# What a launch may set besides the kind (the flow's parameters): the number of sessions and of seats.
LAUNCH_OPTIONS = ("sessions", "seats")

Cadence = Literal["monthly", "weekly"]
# At most a year of sessions per case: a programme that goes on is launched again for the next year.
SESSIONS_PER_YEAR: dict[Cadence, int] = {"monthly": 12, "weekly": 52}


@dataclass(frozen=True)
class ProgramKind:
    """One kind of programme as the study's complexes run it: with whom, how often, for how many.

    ``partners`` are the agency types that plan it with the complex, one handoff each; the first
    leads (it is asked again when the supervisor wants more work before closing). ``sessions`` and
    ``seats`` are the usual numbers, which a launch may change.
    """

    code: str
    name_ko: str
    name_en: str
    partners: tuple[str, ...]
    cadence: Cadence
    sessions: int
    seats: int

    def name(self, language: str) -> str:
        return self.name_ko if language == "ko" else self.name_en

    @property
    def title(self) -> str:
        """Korean first, English in parentheses, as the CLI and the report show it."""
        return f"{self.name_ko} ({self.name_en})"


KINDS: dict[str, ProgramKind] = {
    kind.code: kind
    for kind in (
        ProgramKind(
            "mind-health", "마음건강 교육", "mind-health education", ("mental-health-center",), "monthly", 3, 20
        ),
        ProgramKind(
            "outing",
            "지역명소 탐방·기차여행",
            "outing and train trip",
            ("private-donor", "welfare-center"),
            "monthly",
            1,
            40,
        ),
        ProgramKind("culture", "문화활동", "cultural activities", ("culture-foundation",), "monthly", 3, 20),
        ProgramKind("meals", "식사 지원", "meal service", ("private-donor", "welfare-center"), "weekly", 4, 30),
        ProgramKind(
            "event",
            "어버이날·가정의 달 행사",
            "Parents' Day and family-month event",
            ("community-center", "welfare-center", "social-security-council", "residents-committee"),
            "monthly",
            1,
            60,
        ),
    )
}


class Partner(NamedTuple):
    """An agency that planned the programme: it gets the report."""

    agency_id: str
    agency_type: str


def find_kind(code: str | None) -> ProgramKind:
    """The programme kind named ``code``; a clear error listing the kinds for a missing or unknown one."""
    if code is None:
        raise CaseError(f"--kind: {PROGRAM}에는 프로그램 종류가 필요합니다; {', '.join(KINDS)} (a kind is required)")
    if code not in KINDS:
        raise CaseError(
            f"--kind: 알 수 없는 프로그램 종류 '{code}'; 가능한 종류: {', '.join(KINDS)} (unknown programme kind)"
        )
    return KINDS[code]


def check_launch(intervention: str, kind: str | None, parameters: Mapping[str, int]) -> None:
    """Refuse programme options that do not fit the launch, naming the option, before anything is written.

    A programme needs its kind; any other intervention takes neither a kind nor programme options.
    """
    if intervention not in GROUP_INTERVENTIONS:
        options = (["kind"] if kind is not None else []) + list(parameters)
        if options:
            raise CaseError(f"--{options[0]}: 협력 프로그램({PROGRAM})에만 씁니다 (only for {PROGRAM})")
        return
    found = find_kind(kind)
    unknown = [name for name in parameters if name not in LAUNCH_OPTIONS]
    if unknown:
        raise CaseError(f"--{unknown[0]}: 프로그램에 없는 설정입니다 (not a programme option)")
    limit = SESSIONS_PER_YEAR[found.cadence]
    if not 1 <= parameters.get("sessions", 1) <= limit:
        raise CaseError(f"--sessions: 1–{limit} 사이여야 합니다 ({found.cadence}: 1 to {limit} sessions)")
    if parameters.get("seats", 1) < 1:
        raise CaseError("--seats: 정원은 1 이상이어야 합니다 (at least one seat)")


def program_case(session: Session, ref: str, *, open_only: bool = True) -> Case:
    """The programme case ``ref`` (open, unless only reading it); a clear error for any other case."""
    case = find_case(session, ref)
    if case.intervention not in GROUP_INTERVENTIONS:
        raise CaseError(f"case: 사례 {ref}는 프로그램 사례가 아닙니다 ({case.intervention}; not a programme case)")
    if open_only and case.status != "open":
        raise CaseError(f"case: 사례 {ref}는 종결되었습니다 (case is closed)")
    return case


def kind_of(case: Case) -> ProgramKind:
    """The kind of programme case ``case`` (stored when it was opened)."""
    return find_kind(case.program_kind)


def invitation_order(residents: Iterable[Resident]) -> list[Resident]:
    """Who is invited first: residents living alone (the isolated households the study puts first),
    then the oldest, then by reference so the order is stable."""
    return sorted(residents, key=lambda r: (not r.lives_alone, r.birth_year, r.ref))


def session_dates(first_day: dt.date, sessions: int, cadence: Cadence, days: BusinessCalendar) -> list[dt.date]:
    """Sessions from ``first_day`` every month or every week, each moved to a business day if needed.

    Each date is counted from ``first_day``, not from the previous session, so a holiday that moves
    one session does not move the ones after it.
    """
    limit = SESSIONS_PER_YEAR[cadence]
    if not 1 <= sessions <= limit:
        raise CaseError(f"sessions: 회기 수는 1–{limit}이어야 합니다 ({cadence}: 1 to {limit} sessions)")
    step = days.add_months if cadence == "monthly" else days.add_weeks
    return [step(first_day, n) for n in range(sessions)]


@dataclass(frozen=True)
class Recruitment:
    """What recruitment opened with, in counts and dates only (this goes to Prefect)."""

    invited: int
    invited_alone: int
    session_dates: tuple[str, ...]


def open_recruitment(
    session: Session,
    case: Case,
    *,
    sessions: int,
    seats: int,
    first_day: dt.date,
    days: BusinessCalendar,
    at: dt.datetime,
) -> Recruitment:
    """Plan the sessions and invite up to ``seats`` residents of the complex, isolated ones first.

    Done once per case: asking again returns what was planned the first time.
    """
    if seats < 1:
        raise CaseError("seats: 정원은 1 이상이어야 합니다 (at least one seat)")
    planned = _sessions(session, case)
    if not planned:
        dates = session_dates(first_day, sessions, kind_of(case).cadence, days)
        for number, day in enumerate(dates, start=1):
            session.add(ProgramSession(case_id=case.id, number=number, planned_on=day))
        residents = session.scalars(select(Resident).where(Resident.complex_code == case.complex_code))
        for rank, resident in enumerate(invitation_order(residents)[:seats], start=1):
            session.add(
                ProgramParticipant(
                    case_id=case.id, resident_ref=resident.ref, priority=rank, status="invited", invited_at=at
                )
            )
        session.flush()
        audit(session, case, case.coordinator_id, "program-recruitment-opened", sessions=sessions, seats=seats)
        planned = _sessions(session, case)
    invited = _participants(session, case, invited_only=True)
    return Recruitment(
        invited=len(invited),
        invited_alone=sum(1 for p in invited if p.resident.lives_alone),
        session_dates=tuple(s.planned_on.isoformat() for s in planned),
    )


def enrol(session: Session, case: Case, resident_refs: list[str], *, at: dt.datetime) -> int:
    """Enrol residents of the case's complex; returns how many were newly enrolled.

    Every reference is checked before anything is written, so one bad reference writes nothing.
    Residents who were not invited may join too (they get no invitation rank).
    """
    if not _sessions(session, case):
        raise CaseError(f"case: 사례 {case.ref}는 아직 참여자 모집 전입니다 (recruitment has not started)")
    residents = _residents_of_complex(session, case, resident_refs)
    known = {p.resident_ref: p for p in _participants(session, case)}
    added = 0
    for resident in residents:
        participant = known.get(resident.ref)
        if participant is None:
            participant = ProgramParticipant(case_id=case.id, resident_ref=resident.ref, status="invited")
            session.add(participant)
            known[resident.ref] = participant
        if participant.status != "enrolled":
            participant.status = "enrolled"
            participant.enrolled_at = at
            added += 1
    session.flush()
    audit(session, case, case.coordinator_id, "program-enrolled", count=added)
    return added


def attend(session: Session, case: Case, number: int, resident_refs: list[str], *, at: dt.datetime) -> int:
    """Record who came to session ``number``; returns how many were newly recorded.

    Only enrolled residents, and only while the session is not yet confirmed: once the
    coordinator confirms it, its attendance is what the report counts.
    """
    program_session = _session(session, case, number)
    if program_session.status != "planned":
        raise CaseError(
            f"--session: {number}회기는 이미 확인되어 출석을 바꿀 수 없습니다 "
            f"(session {number} is already {program_session.status})"
        )
    residents = _residents_of_complex(session, case, resident_refs)
    enrolled = {p.resident_ref for p in _participants(session, case) if p.status == "enrolled"}
    strangers = [r.ref for r in residents if r.ref not in enrolled]
    if strangers:
        raise CaseError(
            f"--resident: {', '.join(strangers)}은(는) 이 프로그램 참여자가 아닙니다; "
            f"먼저 yeongye program enrol (not enrolled)"
        )
    present = set(
        session.scalars(
            select(ProgramAttendance.resident_ref).where(ProgramAttendance.session_id == program_session.id)
        )
    )
    added = 0
    for resident in residents:
        if resident.ref not in present:
            session.add(ProgramAttendance(session_id=program_session.id, resident_ref=resident.ref, recorded_at=at))
            present.add(resident.ref)
            added += 1
    session.flush()
    audit(session, case, case.coordinator_id, "program-attendance", number=number, count=added)
    return added


def record_session(session: Session, case: Case, number: int, *, held: bool, at: dt.datetime) -> int:
    """Confirm session ``number`` as held or cancelled; returns its attendance (0 when cancelled).

    The first confirmation stands: a replay returns the same count.
    """
    program_session = _session(session, case, number)
    if program_session.status == "planned":
        program_session.status = "held" if held else "cancelled"
        program_session.recorded_at = at
        audit(session, case, case.coordinator_id, "program-session", number=number, status=program_session.status)
    if program_session.status != "held":
        return 0
    return _attendance(session, program_session)


def summary(session: Session, case: Case) -> dict[str, Any]:
    """The programme in counts: what the report and the Prefect artifact may show (no one is named)."""
    participants = _participants(session, case)
    invited = [p for p in participants if p.priority is not None]
    enrolled = [p for p in participants if p.status == "enrolled"]
    sessions = [
        {
            "number": s.number,
            "planned_on": s.planned_on.isoformat(),
            "status": s.status,
            "attended": _attendance(session, s) if s.status == "held" else 0,
        }
        for s in _sessions(session, case)
    ]
    held = [s for s in sessions if s["status"] == "held"]
    kind = kind_of(case)
    return {
        "case": case.ref,
        "complex": case.complex_code,
        "kind": kind.code,
        "kind_title": kind.title,
        "partners": [p.agency_id for p in partners(session, case)],
        "invited": len(invited),
        "invited_alone": sum(1 for p in invited if p.resident.lives_alone),
        "enrolled": len(enrolled),
        "enrolled_alone": sum(1 for p in enrolled if p.resident.lives_alone),
        "sessions_planned": len(sessions),
        "sessions_held": len(held),
        "attendances": sum(s["attended"] for s in held),
        "sessions": sessions,
    }


def roster(session: Session, case: Case) -> list[dict[str, Any]]:
    """Invited and enrolled residents with their details and sessions attended (held ones), for the
    coordinator (CLI only, never Prefect)."""
    attended: dict[str, int] = {}
    for ref, count in session.execute(
        select(ProgramAttendance.resident_ref, func.count(ProgramAttendance.id))
        .join(ProgramSession, ProgramSession.id == ProgramAttendance.session_id)
        .where(ProgramSession.case_id == case.id, ProgramSession.status == "held")
        .group_by(ProgramAttendance.resident_ref)
    ):
        attended[ref] = count
    return [
        {
            "ref": p.resident_ref,
            "priority": p.priority,
            "status": p.status,
            "name": p.resident.name,
            "building": p.resident.building,
            "unit": p.resident.unit,
            "phone": p.resident.phone,
            "lives_alone": p.resident.lives_alone,
            "attended": attended.get(p.resident_ref, 0),
        }
        for p in _participants(session, case)
    ]


def partners(session: Session, case: Case, planning_step: str = PLANNING_STEP) -> list[Partner]:
    """The agencies that completed the joint planning, in the order of the kind's partner types (the
    lead first), whatever order their answers came in; each receives the report."""
    rows = session.execute(
        select(Referral.agency_id, Agency.type_code)
        .join(Agency, Agency.id == Referral.agency_id)
        .where(Referral.case_id == case.id, Referral.step == planning_step, Referral.status == "completed")
        .order_by(Referral.id)
    )
    order = kind_of(case).partners
    found = [Partner(agency_id, agency_type) for agency_id, agency_type in rows]
    return sorted(found, key=lambda p: order.index(p.agency_type) if p.agency_type in order else len(order))


def _sessions(session: Session, case: Case) -> list[ProgramSession]:
    return list(
        session.scalars(select(ProgramSession).where(ProgramSession.case_id == case.id).order_by(ProgramSession.number))
    )


def _session(session: Session, case: Case, number: int) -> ProgramSession:
    found = session.scalar(
        select(ProgramSession).where(ProgramSession.case_id == case.id, ProgramSession.number == number)
    )
    if found is None:
        planned = len(_sessions(session, case))
        raise CaseError(
            f"--session: {number}회기가 없습니다; 계획된 회기는 1–{planned}입니다 (no such session; planned: {planned})"
            if planned
            else f"--session: 사례 {case.ref}는 아직 회기를 계획하지 않았습니다 (no sessions planned yet)"
        )
    return found


def _participants(session: Session, case: Case, *, invited_only: bool = False) -> list[ProgramParticipant]:
    query = select(ProgramParticipant).where(ProgramParticipant.case_id == case.id)
    if invited_only:
        query = query.where(ProgramParticipant.priority.is_not(None))
    return list(
        session.scalars(
            query.order_by(
                ProgramParticipant.priority.is_(None), ProgramParticipant.priority, ProgramParticipant.resident_ref
            )
        )
    )


def _attendance(session: Session, program_session: ProgramSession) -> int:
    return (
        session.scalar(
            select(func.count(ProgramAttendance.id)).where(ProgramAttendance.session_id == program_session.id)
        )
        or 0
    )


def _residents_of_complex(session: Session, case: Case, resident_refs: list[str]) -> list[Resident]:
    """The residents named, all checked first: unknown ones and those of another complex are refused."""
    refs = list(dict.fromkeys(ref.strip() for ref in resident_refs if ref.strip()))
    if not refs:
        raise CaseError("--resident: 입주민을 한 명 이상 지정해야 합니다 (name at least one resident)")
    found = {r.ref: r for r in session.scalars(select(Resident).where(Resident.ref.in_(refs)))}
    unknown = [ref for ref in refs if ref not in found]
    if unknown:
        raise CaseError(f"--resident: 등록되지 않은 입주민 {', '.join(unknown)} (unknown resident)")
    elsewhere = [ref for ref in refs if found[ref].complex_code != case.complex_code]
    if elsewhere:
        raise CaseError(
            f"--resident: {', '.join(elsewhere)}은(는) {case.complex_code}단지 입주민이 아닙니다 "
            "(not a resident of the case's complex)"
        )
    return [found[ref] for ref in refs]
