"""The legal clocks of involuntary psychiatric admission (정신건강복지법), as plain date arithmetic.

Each function maps one provision to the date it fixes, so the rules can be checked by hand and in
unit tests without Prefect. Sources: shared/reference/korea_domain.md §1 and §6.4, and the
statutes' text (정신건강복지법 §44–§50, §62; 행정기본법 §6).

A period that restricts a person's liberty (a hold, an admission) is counted by its least
restrictive reading: 행정기본법 §6② counts its first day and ends it on its last day even when that
is a Saturday or 공휴일, and where the texts still leave two readings, yeongye takes the one that
ends sooner, because a person must never be held on a reading the law may not allow. Each clock
says which reading it takes and why; where the reference is unsure, it says so instead of guessing.
A deadline for someone's act (a report, a notice) is not such a period, and says its own reading.
Where the statute gives no number of days ("지체 없이", without delay), the date is yeongye's own
practice and says so.

The emergency admission's on-scene record (the finder's request, the doctor's and the officer's
consent, the escort and the admission, each with its time) is here too: the hold runs from it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import cases
from registry.calendar import SEOUL, BusinessCalendar, rights_period_end
from registry.models import Agency, Approval, AuditEntry, Case

EMERGENCY_HOLD_DAYS = 3  # §50③: "3일(공휴일은 제외한다) 이내의 기간"
DIAGNOSTIC_ADMISSION_DAYS = 14  # §44④: "2주의 범위에서 기간을 정하여"
APPROPRIATENESS_REPORT_BUSINESS_DAYS = 3  # §45②: "입원등을 한 날부터 3일 이내에 ... 신고"
APPROPRIATENESS_DECISION_MONTHS = 1  # §47③: "최초로 입원등을 한 날부터 1개월 이내에 ... 통지"
ADMINISTRATIVE_ADMISSION_MONTHS = 3  # §62①: "최초로 입원을 한 날부터 3개월 이내에 입원을 해제"
FIRST_EXTENSION_MONTHS = 3  # §62②1: "3개월 이후의 1차 입원 기간 연장: 3개월 이내"
LATER_EXTENSION_MONTHS = 6  # §62②2: "매 입원 기간 연장 시마다 6개월 이내"

# The hold's basis as the guardian's notice, the deadline emails and `yeongye case` name it: the
# provision, and the rule that counts its first day.
EMERGENCY_HOLD_BASIS = "정신건강복지법 §50③, 행정기본법 §6② 초일 산입"


def emergency_hold_end(days: BusinessCalendar, admitted: dt.date) -> dt.date:
    """Last day the hospital may hold the person (§50③: "3일(공휴일은 제외한다) 이내"), to its 24:00.

    The reading that ends soonest of those the text allows:
    - the day of admission is the first of the 3 days (행정기본법 §6②1), however late the person
      came in: admitted at 23:40 on a Saturday, the Saturday is day 1. Not counting it (민법 §157),
      or counting 72 hours from the admission, both end later;
    - a 공휴일 (Sundays, holidays, substitute holidays, declared overrides) is not counted, an
      admission on one included, since the statute excludes them;
    - a Saturday is counted: it is a day off, not a 공휴일 (관공서의 공휴일에 관한 규정 §2). The
      reference calls the text's silence on Saturdays UNCERTAIN; hospital practice counts them
      too, and excluding them would end later;
    - the hold ends on its last day, a Saturday included (행정기본법 §6②2).
    Admitted Wed 2026-09-23: Wed (1), 추석 Thu–Sat and Sun out, Mon 09-28 (2), Tue 09-29 (3).
    """
    # Counting from the day before makes the day of admission the first day, unless it is a 공휴일.
    return days.add_days_excluding_public_holidays(admitted - dt.timedelta(days=1), EMERGENCY_HOLD_DAYS)


def emergency_notice_due(admitted: dt.date) -> dt.date:
    """When the hospital should have sent the guardian its written notice (§50⑥, "지체 없이").

    Not a period of the hold but a duty of the hospital, and the law gives no number of days.
    yeongye's practice: by the day after admission, on every day (a notice does not wait for a
    holiday), so that an unconfirmed notice times out (the day after that) no later than the
    hold's last day: the hold ends on the second day after admission at the earliest.
    """
    return admitted + dt.timedelta(days=1)


def without_delay(days: BusinessCalendar, start: dt.date) -> dt.date:
    """Due date of an act the law wants "즉시" or "지체 없이" from a district office: the next business day.

    The office works business days; yeongye's practice, not a number from the statute (§44③⑤⑧).
    A due date for the office's act, not a period of anyone's admission.
    """
    return days.add_business_days(start, 1)


@dataclass(frozen=True)
class EmergencyClock:
    """The dates of one emergency admission (§50)."""

    admitted: dt.date
    notice_due: dt.date
    hold_end: dt.date


def emergency_clock(days: BusinessCalendar, admitted: dt.date) -> EmergencyClock:
    return EmergencyClock(admitted, emergency_notice_due(admitted), emergency_hold_end(days, admitted))


@dataclass(frozen=True)
class AdministrativeClock:
    """The dates of one administrative admission (§44–§47, §62), all from its first day.

    ``first_day`` is the first day of the diagnostic admission: the 3 months of §62① run from it
    (법제처 법령해석 19-0735), as do the report and the committee's month.
    """

    first_day: dt.date
    diagnostic_end: dt.date
    report_due: dt.date
    committee_due: dt.date
    release_due: dt.date


def diagnostic_admission_end(first_day: dt.date) -> dt.date:
    """Last day of the diagnostic admission (§44④, "2주의 범위에서"): at most 14 days, the first one counted.

    A liberty-restricting period: the first day counts and the period ends on its last day, even a
    Saturday or 공휴일 (행정기본법 §6②), which ends a day sooner than 민법 §157's reading. The district
    head may set a shorter period; yeongye does not learn it and keeps the longest the law allows.
    """
    return rights_period_end(first_day, days=DIAGNOSTIC_ADMISSION_DAYS)


def appropriateness_report_due(days: BusinessCalendar, first_day: dt.date) -> dt.date:
    """Last day for the hospital's report to the 입원적합성심사위원회 (§45②: "입원등을 한 날부터 3일 이내").

    A deadline for the hospital's act, not a period of the admission, so 행정기본법 §6② does not
    apply. Counted as 3 business days after admission (first day not counted, Saturdays and 공휴일
    out), following the hospital practice in the reference (§6.4: "입원신고 3일 이내 (토요일 및
    공휴일 제외)", a secondary source). UNCERTAIN: 민법 §157/§161 (행정기본법 §6①) would count
    Saturdays and 공휴일 and only move a last day that falls on one, which usually ends sooner; the
    reference's open item 1 (MOHW 정신건강사업안내) would settle it.
    """
    return days.add_business_days(first_day, APPROPRIATENESS_REPORT_BUSINESS_DAYS)


def appropriateness_decision_due(first_day: dt.date) -> dt.date:
    """Last day for the committee's written decision (§47③: 1 month from the first admission).

    A deadline for the committee, but it bounds how long the person is held without a decision on
    whether the admission is lawful, so it is counted as the admission is: first day counted, ending
    on its last day (행정기본법 §6②), the sooner of the two readings. UNCERTAIN whether §6② or
    민법 §157 governs it; the later reading would end a day later.
    """
    return rights_period_end(first_day, months=APPROPRIATENESS_DECISION_MONTHS)


def release_due(first_day: dt.date) -> dt.date:
    """Last day of an administrative admission unless extended (§62①: 3 months from the first admission).

    A liberty-restricting period: from the first day of the diagnostic admission (법제처 19-0735;
    counting from the treatment admission of §44⑦ would end up to 2 weeks later), that day counted
    and the period ending on its last day, even a Saturday or 공휴일 (행정기본법 §6②).
    """
    return rights_period_end(first_day, months=ADMINISTRATIVE_ADMISSION_MONTHS)


def extension_end(period_end: dt.date, extension: int) -> dt.date:
    """Last day of the ``extension``-th extension (§62②), which starts the day after ``period_end``.

    The first extension lasts at most 3 months, each later one at most 6. A liberty-restricting
    period: its first day (the day after the period it extends) counts, and it ends on its last day
    (행정기본법 §6②). The statute puts the extension after the 3 months ("3개월 이후의 ... 연장"),
    so it does not run from the review board's decision.
    """
    if extension < 1:
        raise ValueError("extension counts from 1")
    months = FIRST_EXTENSION_MONTHS if extension == 1 else LATER_EXTENSION_MONTHS
    return rights_period_end(period_end + dt.timedelta(days=1), months=months)


def administrative_clock(days: BusinessCalendar, first_day: dt.date) -> AdministrativeClock:
    return AdministrativeClock(
        first_day=first_day,
        diagnostic_end=diagnostic_admission_end(first_day),
        report_due=appropriateness_report_due(days, first_day),
        committee_due=appropriateness_decision_due(first_day),
        release_due=release_due(first_day),
    )


# --- the emergency admission's on-scene record (§50①②) ------------------------------------------

# The stage of a case whose coordinator is to record the scene, and the audit action that keeps it.
SCENE_STAGE = "on-scene"
SCENE_ACTION = "emergency-scene"
ESCORTS = ("police", "fire-119")  # §50②: the consenting police officer, or a 119 crew
ADMITTED = "admitted"
NO_DOCTOR_CONSENT, NO_POLICE_CONSENT, NOT_ADMITTED = "no-doctor-consent", "no-police-consent", "not-admitted"
# The first wait of a case begun before the on-scene record existed (the doctor's consent, a decision).
STEP_BY_STEP_FIRST_WAIT = "decision-doctor-consent"

# Each field with the command-line option that sets it, so a refusal names what the person typed.
_OPTIONS = {
    "requested_at": "--requested",
    "doctor_consented_at": "--doctor",
    "police_agency_id": "--police",
    "police_consented_at": "--police-consent",
    "escort": "--escort",
    "escort_agency_id": "--escort-agency",
    "hospital_agency_id": "--hospital",
    "admitted_at": "--admitted",
    "reason": "--reason",
}


def _named(field: str) -> str:
    return f"{field} ({_OPTIONS[field]})"


@dataclass(frozen=True)
class SceneEntry:
    """The on-scene record as typed, on the form or at the command line.

    Times are "YYYY-MM-DD HH:MM" in Seoul (an explicit offset is converted), each the moment it
    happened, not when it is recorded; "" means it did not happen (no consent, not admitted).
    """

    requested_at: str
    doctor_consented_at: str = ""
    police_agency_id: str = ""
    police_consented_at: str = ""
    escort: str = ""
    escort_agency_id: str = ""
    hospital_agency_id: str = ""
    admitted_at: str = ""


@dataclass(frozen=True)
class Scene:
    """The on-scene record once checked: times in Seoul, and the agencies that took part."""

    requested_at: dt.datetime
    doctor_consented_at: dt.datetime | None
    police_consented_at: dt.datetime | None
    admitted_at: dt.datetime | None
    police_agency_id: str = ""
    escort: str = ""
    escort_agency_id: str = ""
    hospital_agency_id: str = ""

    @property
    def outcome(self) -> str:
        """How the scene ended: admitted, or the first thing §50① needs that did not happen."""
        if self.doctor_consented_at is None:
            return NO_DOCTOR_CONSENT
        if self.police_consented_at is None:
            return NO_POLICE_CONSENT
        return NOT_ADMITTED if self.admitted_at is None else ADMITTED


def _time(entry: SceneEntry, field: str) -> dt.datetime | None:
    text = str(getattr(entry, field)).strip()
    if not text:
        return None
    try:
        at = dt.datetime.fromisoformat(text) if ":" in text else None
    except ValueError:
        at = None
    if at is None:
        raise cases.CaseError(
            f"{_named(field)}: '{text}'는 YYYY-MM-DD HH:MM 형식의 시각이 아닙니다 (not a YYYY-MM-DD HH:MM time)"
        )
    return at.replace(tzinfo=SEOUL) if at.tzinfo is None else at.astimezone(SEOUL)


def _agency(session: Session, agency_id: str, type_code: str, field: str) -> Agency:
    agency = session.get(Agency, agency_id) if agency_id else None
    if agency is None or not agency.active or agency.type_code != type_code:
        raise cases.CaseError(
            f"{_named(field)}: '{agency_id}'는 등록된 {type_code} 기관이 아닙니다 (not an active {type_code} agency)"
        )
    return agency


def check_scene(session: Session, case: Case, entry: SceneEntry, *, reason: str, now: dt.datetime) -> Scene:
    """The record checked against §50①②; a ``CaseError`` naming the field (and its option) otherwise.

    No time may lie ahead of ``now``. There is no admission without both consents, and the admission
    comes after the request and both consents (§50①). The police escort is the consenting officer
    (§50②); a 119 escort is the district's first 119 service unless named. When a consent was not
    given or the person was not admitted, the case ends there, and ``reason`` must say why.
    The command line calls this too, so a bad option is refused before the case is resumed.
    """
    fields = ("requested_at", "doctor_consented_at", "police_consented_at", "admitted_at")
    requested, doctor, police_at, admitted = (_time(entry, field) for field in fields)
    if requested is None:
        raise cases.CaseError(
            f"{_named('requested_at')}: 의뢰 시각을 입력해야 합니다 (the time of the request is required)"
        )
    for field, at in zip(fields, (requested, doctor, police_at, admitted), strict=True):
        if at is not None and at > now:
            raise cases.CaseError(f"{_named(field)}: {at:%Y-%m-%d %H:%M}은 아직 오지 않은 시각입니다 (in the future)")
    if doctor is None and (police_at or admitted):
        raise cases.CaseError(
            f"{_named('doctor_consented_at')}: 의사의 동의 없이는 응급입원을 의뢰할 수 없습니다 "
            "(§50①: no admission without a doctor's consent)"
        )
    if police_at is None and admitted:
        raise cases.CaseError(
            f"{_named('police_consented_at')}: 경찰관의 동의 없이는 응급입원을 의뢰할 수 없습니다 "
            "(§50①: no admission without a police officer's consent)"
        )
    police = entry.police_agency_id.strip()
    if police or police_at:
        police = _agency(session, police, "police", "police_agency_id").id
    scene = Scene(requested, doctor, police_at, admitted, police_agency_id=police)
    if admitted is None:
        if not reason.strip():
            raise cases.CaseError(
                f"{_named('reason')}: 동의가 없었거나 입원하지 않은 사유를 입력해야 합니다 (a reason is required)"
            )
        return scene
    earlier = [
        field for field, at in zip(fields[:3], (requested, doctor, police_at), strict=True) if at and at > admitted
    ]
    if earlier:
        raise cases.CaseError(
            f"{_named('admitted_at')}: 입원은 의뢰와 두 동의 뒤입니다; {', '.join(map(_named, earlier))}보다 이릅니다 "
            "(§50①: the admission follows the request and both consents)"
        )
    hospital = _agency(session, entry.hospital_agency_id.strip(), "psychiatric-hospital", "hospital_agency_id").id
    return Scene(
        requested,
        doctor,
        police_at,
        admitted,
        police_agency_id=police,
        escort=entry.escort,
        escort_agency_id=_escort(session, case, entry, police),
        hospital_agency_id=hospital,
    )


def _escort(session: Session, case: Case, entry: SceneEntry, police: str) -> str:
    """Who took the person to the hospital (§50②): the consenting officer's station, or a 119 service."""
    named = entry.escort_agency_id.strip()
    if entry.escort not in ESCORTS:
        raise cases.CaseError(f"{_named('escort')}: police 또는 119 (who escorted: the police or 119)")
    if entry.escort == "police":
        if named and named != police:
            raise cases.CaseError(
                f"{_named('escort_agency_id')}: 경찰 호송은 동의한 경찰관이 합니다 ({police}) "
                "(§50②: the consenting officer escorts)"
            )
        return police
    if named:
        return _agency(session, named, "fire-119", "escort_agency_id").id
    crew = cases.choose_agency(session, case, "fire-119", SCENE_STAGE)
    if crew is None:
        raise cases.CaseError(f"{_named('escort_agency_id')}: 이 구의 119 구급대가 등록되어 있지 않습니다 (name it)")
    return crew.id


def hold_clock(days: BusinessCalendar, scene: Scene) -> EmergencyClock | None:
    """The hold's dates from the recorded admission (its day in Seoul), or None if no one was admitted."""
    return emergency_clock(days, scene.admitted_at.astimezone(SEOUL).date()) if scene.admitted_at else None


def scene_records(session: Session, case: Case) -> list[dict[str, Any]]:
    """The on-scene records of ``case``, as kept in the audit trail, oldest first."""
    return list(
        session.scalars(
            select(AuditEntry.detail)
            .where(AuditEntry.case_id == case.id, AuditEntry.action == SCENE_ACTION)
            .order_by(AuditEntry.id)
        )
    )


def record_scene(
    session: Session, case: Case, scene: Scene, *, days: BusinessCalendar, wait: str, note: int | None, by: str
) -> EmergencyClock | None:
    """Keep the on-scene record as ``by``'s, once for the wait it answered; returns the hold's clock.

    It goes to the audit trail, which no one can edit afterwards: the hold is counted from it. The
    record holds times, agency ids and the number of the note with what the person wrote, if any.
    """
    clock = hold_clock(days, scene)
    if any(record.get("wait") == wait for record in scene_records(session, case)):
        return clock  # recorded before a crash, and the task run again
    times = {
        "requested_at": scene.requested_at,
        "doctor_consented_at": scene.doctor_consented_at,
        "police_consented_at": scene.police_consented_at,
        "admitted_at": scene.admitted_at,
    }
    cases.audit(
        session,
        case,
        by,
        SCENE_ACTION,
        wait=wait,
        outcome=scene.outcome,
        **{field: at.isoformat() if at else None for field, at in times.items()},
        police=scene.police_agency_id or None,
        escort=scene.escort or None,
        escort_agency=scene.escort_agency_id or None,
        hospital=scene.hospital_agency_id or None,
        hold_end=clock.hold_end.isoformat() if clock else None,
        basis=EMERGENCY_HOLD_BASIS if clock else None,
        reason_note=note,
    )
    return clock


def began_step_by_step(session: Session, case: Case) -> bool:
    """Whether the case began before the on-scene record, asking for the doctor's consent first.

    Its flow run has answers at those waits, and must meet them again, in their order, to replay.
    """
    first = select(Approval.id).where(Approval.case_id == case.id, Approval.key == STEP_BY_STEP_FIRST_WAIT)
    return session.scalar(first) is not None
