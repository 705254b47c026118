"""The rules of a group programme (e.g. a monthly 마음건강 교육 run with the 정신건강복지센터).

A programme case belongs to a complex, not to one resident. Who was invited, who enrolled and who
came to which session is personal data: it is kept here, written by the CLI and the programme's
tasks, and only counts leave the registry. Functions take an open ``Session`` and leave committing
to the caller; the ones a replayed task may call twice are idempotent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.calendar import BusinessCalendar
from registry.cases import GROUP_INTERVENTIONS, CaseError, audit, find_case
from registry.models import Case, ProgramAttendance, ProgramParticipant, ProgramSession, Referral, Resident

# The step in which the partner agency plans the programme with the complex; its agency is the partner.
PLANNING_STEP = "planning"
MAX_SESSIONS = 12


def program_case(session: Session, ref: str, *, open_only: bool = True) -> Case:
    """The programme case ``ref`` (open, unless only reading it); a clear error for any other case."""
    case = find_case(session, ref)
    if case.intervention not in GROUP_INTERVENTIONS:
        raise CaseError(f"case: 사례 {ref}는 프로그램 사례가 아닙니다 ({case.intervention}; not a programme case)")
    if open_only and case.status != "open":
        raise CaseError(f"case: 사례 {ref}는 종결되었습니다 (case is closed)")
    return case


def invitation_order(residents: Iterable[Resident]) -> list[Resident]:
    """Who is invited first: residents living alone (the isolated households the study puts first),
    then the oldest, then by reference so the order is stable."""
    return sorted(residents, key=lambda r: (not r.lives_alone, r.birth_year, r.ref))


def session_dates(first_day: dt.date, sessions: int, days: BusinessCalendar) -> list[dt.date]:
    """Monthly sessions from ``first_day``, each on a business day (the calendar's month arithmetic)."""
    if not 1 <= sessions <= MAX_SESSIONS:
        raise CaseError(f"sessions: 회기 수는 1–{MAX_SESSIONS}이어야 합니다 (1 to {MAX_SESSIONS} sessions)")
    return [days.add_months(first_day, n) for n in range(sessions)]


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
        for number, day in enumerate(session_dates(first_day, sessions, days), start=1):
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
    return {
        "case": case.ref,
        "complex": case.complex_code,
        "partner": partner(session, case),
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


def partner(session: Session, case: Case, planning_step: str = PLANNING_STEP) -> str | None:
    """The agency that completed the joint planning: it runs the sessions and receives the report."""
    return session.scalar(
        select(Referral.agency_id)
        .where(Referral.case_id == case.id, Referral.step == planning_step, Referral.status == "completed")
        .order_by(Referral.id)
    )


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
