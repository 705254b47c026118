"""Every clock of an involuntary admission (registry/mental_health.py), by hand, across 추석 2026 and a Sunday.

Holidays from ``holidays`` KR (checked): 추석 2026 is Thu 09-24, Fri 09-25 and Sat 09-26; a 추석 on a
Saturday gets no substitute day (only a Sunday does), while 개천절 on Sat 10-03 gets Mon 10-05;
한글날 is Fri 10-09. 공휴일 are those and every Sunday; a Saturday is a day off, not a 공휴일.
A liberty-restricting period counts its first day (행정기본법 §6②) and ends on its last day, a
Saturday or 공휴일 included. Each expected date is worked out in the comment beside it.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from registry import cases, mental_health
from registry.calendar import SEOUL, BusinessCalendar, SystemClock
from registry.db import Database
from registry.mental_health import Scene, SceneEntry
from registry.models import AuditEntry
from tests.driving import coordinator_of

KR = BusinessCalendar()
D = dt.date


# --- §50③ the emergency hold: 3 days, 공휴일 not counted, the day of admission is day 1 ---------


@pytest.mark.parametrize(
    ("admitted", "hold_end"),
    [
        # Wed 09-23 (1); 추석 Thu 24–Sat 26 (its Saturday a holiday too) and Sun 27 out; Mon 28 (2), Tue 29 (3).
        (D(2026, 9, 23), D(2026, 9, 29)),
        # Sat 09-19 (1): a Saturday counts; Sun 20 out; Mon 21 (2), Tue 22 (3).
        (D(2026, 9, 19), D(2026, 9, 22)),
        # Sun 09-20 is out, so the count starts Monday: Mon 21 (1), Tue 22 (2), Wed 23 (3).
        (D(2026, 9, 20), D(2026, 9, 23)),
        # Mon 09-21 (1), Tue 22 (2), Wed 23 (3): the last day before 추석.
        (D(2026, 9, 21), D(2026, 9, 23)),
        # Tue 09-22 (1), Wed 23 (2); 추석 Thu–Sat and Sun out; Mon 28 (3).
        (D(2026, 9, 22), D(2026, 9, 28)),
        # Sat 09-26 is 추석: out, and Sun 27; Mon 28 (1), Tue 29 (2), Wed 30 (3).
        (D(2026, 9, 26), D(2026, 9, 30)),
        # Fri 10-02 (1); Sat 03 개천절, Sun 04 and Mon 05 (its substitute day) out; Tue 06 (2), Wed 07 (3).
        (D(2026, 10, 2), D(2026, 10, 7)),
        # Thu 10-08 (1); Fri 09 한글날 out; Sat 10 (2); Sun 11 out; Mon 12 (3).
        (D(2026, 10, 8), D(2026, 10, 12)),
        # Wed 03-11 (1), Thu 12 (2), Fri 13 (3).
        (D(2026, 3, 11), D(2026, 3, 13)),
        # Thu 03-12 (1), Fri 13 (2), Sat 14 (3): the hold ends on a Saturday, and there it ends.
        (D(2026, 3, 12), D(2026, 3, 14)),
    ],
)
def test_emergency_hold_counts_the_day_of_admission(admitted: dt.date, hold_end: dt.date) -> None:
    assert mental_health.emergency_hold_end(KR, admitted) == hold_end


def test_emergency_hold_with_a_holiday_declared_later() -> None:
    # Thu 03-12 declared a temporary holiday: Wed 11 (1), Thu out, Fri 13 (2), Sat 14 (3).
    declared = BusinessCalendar({D(2026, 3, 12): True})
    assert mental_health.emergency_hold_end(declared, D(2026, 3, 11)) == D(2026, 3, 14)
    # A holiday withdrawn (override False): 추석's Saturday would then count, Fri 09-25 still out:
    # Wed 23 (1), Sat 26 (2), Mon 28 (3).
    withdrawn = BusinessCalendar({D(2026, 9, 24): True, D(2026, 9, 26): False})
    assert mental_health.emergency_hold_end(withdrawn, D(2026, 9, 23)) == D(2026, 9, 28)


def test_the_first_day_reading_never_ends_later_than_the_civil_code_reading() -> None:
    """Against 민법 §157 (the day of admission not counted, the former reading): never later, and a
    counted day sooner whenever the person is admitted on a day that is not a 공휴일."""
    day = D(2026, 1, 1)
    while day.year == 2026:
        ours = mental_health.emergency_hold_end(KR, day)
        civil = KR.add_days_excluding_public_holidays(day, mental_health.EMERGENCY_HOLD_DAYS)
        assert ours <= civil, day
        assert (ours < civil) == (not KR.is_public_holiday(day)), day
        day += dt.timedelta(days=1)


def _admitted_at(text: str) -> Scene:
    at = dt.datetime.fromisoformat(text)
    return Scene(at - dt.timedelta(minutes=30), at, at, at, "gaon-police-1", "police", "gaon-police-1", "h")


@pytest.mark.parametrize(
    ("admitted_at", "admitted", "hold_end"),
    [
        # 23:40 on Sat 09-19, Seoul: the Saturday is day 1 (20 minutes of it left): Sun out, Mon (2), Tue 22 (3).
        ("2026-09-19T23:40:00+09:00", D(2026, 9, 19), D(2026, 9, 22)),
        # The same moment written in UTC is still Saturday in Seoul.
        ("2026-09-19T14:40:00+00:00", D(2026, 9, 19), D(2026, 9, 22)),
        # 30 minutes later it is Sunday 00:10 in Seoul: Sunday out, Mon 21 (1), Tue (2), Wed 23 (3).
        ("2026-09-19T15:10:00+00:00", D(2026, 9, 20), D(2026, 9, 23)),
        # 23:40 on 추석's Saturday 09-26: out, Sun out; Mon 28 (1), Tue (2), Wed 30 (3).
        ("2026-09-26T23:40:00+09:00", D(2026, 9, 26), D(2026, 9, 30)),
    ],
)
def test_the_hold_runs_from_the_recorded_admission_in_seoul(
    admitted_at: str, admitted: dt.date, hold_end: dt.date
) -> None:
    clock = mental_health.hold_clock(KR, _admitted_at(admitted_at))
    assert clock is not None and (clock.admitted, clock.hold_end) == (admitted, hold_end)
    # The guardian's notice is due the next day, every day counted (추석 and Sundays included).
    assert clock.notice_due == admitted + dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("admitted", "notice_due"),
    [
        (D(2026, 9, 23), D(2026, 9, 24)),  # the day after, although it is 추석
        (D(2026, 9, 19), D(2026, 9, 20)),  # the day after, although it is a Sunday
    ],
)
def test_guardian_notice_is_due_the_next_day_on_every_day(admitted: dt.date, notice_due: dt.date) -> None:
    assert mental_health.emergency_notice_due(admitted) == notice_due
    # It times out (the day after it is due) no later than the hold's last day.
    assert notice_due + dt.timedelta(days=1) <= mental_health.emergency_hold_end(KR, admitted)


# --- the district office's "즉시" / "지체 없이": its next business day (practice) --------------------


@pytest.mark.parametrize(
    ("start", "due"),
    [
        (D(2026, 9, 18), D(2026, 9, 21)),  # Fri → Mon (Sat and Sun are not business days)
        (D(2026, 9, 23), D(2026, 9, 28)),  # Wed → Mon, after 추석 Thu–Sat and Sun
        (D(2026, 9, 20), D(2026, 9, 21)),  # Sun → Mon
        (D(2026, 10, 2), D(2026, 10, 6)),  # Fri → Tue, after 개천절 (Sat), Sun and the substitute Mon 10-05
    ],
)
def test_without_delay_is_the_next_business_day(start: dt.date, due: dt.date) -> None:
    assert mental_health.without_delay(KR, start) == due


# --- §44④ the diagnostic admission: at most 2 weeks, the first day counted --------------------------


@pytest.mark.parametrize(
    ("first_day", "last_day"),
    [
        (D(2026, 9, 13), D(2026, 9, 26)),  # Sun 09-13 is day 1; day 14 is Sat 09-26, 추석: it ends there
        (D(2026, 9, 14), D(2026, 9, 27)),  # Mon 09-14 + 13 days: Sun 09-27, not moved to Monday
        (D(2026, 9, 23), D(2026, 10, 6)),  # Wed 09-23 + 13 days, 추석 counted like any day: Tue 10-06
    ],
)
def test_diagnostic_admission_ends_on_its_fourteenth_day(first_day: dt.date, last_day: dt.date) -> None:
    assert mental_health.diagnostic_admission_end(first_day) == last_day


# --- §45② the report to the committee: 3 business days after (hospital practice; UNCERTAIN) ---------


@pytest.mark.parametrize(
    ("first_day", "due"),
    [
        (D(2026, 9, 23), D(2026, 9, 30)),  # Wed: 추석 and Sun out; Mon 28 (1), Tue 29 (2), Wed 30 (3)
        (D(2026, 9, 20), D(2026, 9, 23)),  # Sun: Mon 21 (1), Tue 22 (2), Wed 23 (3)
        (D(2026, 9, 18), D(2026, 9, 23)),  # Fri: Sat and Sun out; Mon 21, Tue 22, Wed 23
        (D(2026, 10, 1), D(2026, 10, 7)),  # Thu: Fri 02 (1); Sat 03–Mon 05 out; Tue 06 (2), Wed 07 (3)
    ],
)
def test_appropriateness_report_is_due_three_business_days_after(first_day: dt.date, due: dt.date) -> None:
    assert mental_health.appropriateness_report_due(KR, first_day) == due


# --- §47③ the committee's decision: 1 month from the first admission, its first day counted ---------


@pytest.mark.parametrize(
    ("first_day", "due"),
    [
        (D(2026, 8, 26), D(2026, 9, 25)),  # from Wed 08-26: the day before 09-26, Fri 09-25 (추석), not moved
        (D(2026, 8, 28), D(2026, 9, 27)),  # from Fri 08-28: Sun 09-27, not moved
        (D(2026, 1, 31), D(2026, 2, 28)),  # no 02-31: the month's last day (민법 §160③)
    ],
)
def test_committee_decision_is_due_a_month_from_the_first_day(first_day: dt.date, due: dt.date) -> None:
    assert mental_health.appropriateness_decision_due(first_day) == due


# --- §62① release: 3 months from the first day of the diagnostic admission --------------------------


@pytest.mark.parametrize(
    ("first_day", "due"),
    [
        (D(2026, 6, 26), D(2026, 9, 25)),  # from Fri 06-26: Fri 09-25, 추석, and it ends there
        (D(2026, 6, 28), D(2026, 9, 27)),  # from Sun 06-28: Sun 09-27
        (D(2026, 11, 30), D(2027, 2, 28)),  # no 02-30: the month's last day
    ],
)
def test_release_is_due_three_months_from_the_first_day(first_day: dt.date, due: dt.date) -> None:
    assert mental_health.release_due(first_day) == due
    # The whole clock counts from the same first day.
    assert mental_health.administrative_clock(KR, first_day).release_due == due


# --- §62② extensions: from the day after the period, 3 months the first time, 6 after ---------------


@pytest.mark.parametrize(
    ("period_end", "extension", "last_day"),
    [
        (D(2026, 6, 25), 1, D(2026, 9, 25)),  # first day Fri 06-26; 3 months end Fri 09-25 (추석)
        (D(2026, 6, 27), 1, D(2026, 9, 27)),  # first day Sun 06-28; ends Sun 09-27
        (D(2026, 3, 25), 2, D(2026, 9, 25)),  # first day Thu 03-26; 6 months end Fri 09-25 (추석)
        (D(2026, 3, 26), 3, D(2026, 9, 26)),  # first day 03-27; 6 months end Sat 09-26 (추석's Saturday)
    ],
)
def test_extension_starts_the_day_after_and_counts_it(period_end: dt.date, extension: int, last_day: dt.date) -> None:
    assert mental_health.extension_end(period_end, extension) == last_day


# --- the on-scene record the hold runs from ---------------------------------------------------------

NOW = dt.datetime(2026, 9, 19, 23, 55, tzinfo=SEOUL)
ADMITTED = SceneEntry(
    requested_at="2026-09-19 23:05",
    doctor_consented_at="2026-09-19 23:15",
    police_agency_id="gaon-police-1",
    police_consented_at="2026-09-19 23:20",
    escort="police",
    hospital_agency_id="gaon-hospital-1",
    admitted_at="2026-09-19 23:40",
)


def _case(db: Database) -> str:
    by = coordinator_of(db, "A").staff_id
    with db.transaction() as session:
        return cases.open_case(
            session,
            intervention="emergency-admission",
            complex_code="A",
            resident_ref="R-A-001",
            opened_at=SystemClock().now(),
            by=by,
        ).ref


def _check(db: Database, ref: str, entry: SceneEntry, reason: str = "") -> Scene:
    with db.transaction() as session:
        return mental_health.check_scene(session, cases.find_case(session, ref), entry, reason=reason, now=NOW)


def test_the_scene_is_checked_against_article_50(registry: Database) -> None:
    ref = _case(registry)
    scene = _check(registry, ref, ADMITTED)
    assert scene.outcome == mental_health.ADMITTED
    assert scene.admitted_at == dt.datetime(2026, 9, 19, 23, 40, tzinfo=SEOUL)
    assert (scene.escort, scene.escort_agency_id, scene.hospital_agency_id) == (
        "police",
        "gaon-police-1",
        "gaon-hospital-1",
    )
    # A 119 escort is the district's first 119 service unless named.
    assert _check(registry, ref, _with(escort="fire-119")).escort_agency_id == "gaon-119-1"

    refused = {
        "requested_at (--requested)": _with(requested_at=""),
        "admitted_at (--admitted)": _with(admitted_at="2026-09-19"),  # no time of day
        "admitted_at (--admitted): 2026-09-20 00:10": _with(admitted_at="2026-09-20 00:10"),  # ahead of now
        "doctor_consented_at (--doctor)": _with(doctor_consented_at=""),  # admitted without a doctor's consent
        "police_consented_at (--police-consent)": _with(police_consented_at=""),
        "admitted_at (--admitted): 입원은": _with(
            police_consented_at="2026-09-19 23:45", admitted_at="2026-09-19 23:44"
        ),
        "police_agency_id (--police)": _with(police_agency_id="gaon-119-1"),  # not a police agency
        "hospital_agency_id (--hospital)": _with(hospital_agency_id=""),
        "escort_agency_id (--escort-agency)": _with(escort_agency_id="gaon-119-1"),  # not the consenting officer
        "escort (--escort)": _with(escort=""),
    }
    for message, entry in refused.items():
        with pytest.raises(cases.CaseError, match=message.replace("(", r"\(").replace(")", r"\)")):
            _check(registry, ref, entry)


def test_a_scene_that_stopped_ends_the_case_with_its_reason(registry: Database) -> None:
    ref = _case(registry)
    no_doctor = SceneEntry(requested_at="2026-09-19 23:05")
    with pytest.raises(cases.CaseError, match="reason"):
        _check(registry, ref, no_doctor)
    assert _check(registry, ref, no_doctor, "의사가 응급입원 대상이 아니라고 판단").outcome == "no-doctor-consent"
    no_officer = _with(police_consented_at="", admitted_at="", escort="", hospital_agency_id="")
    assert _check(registry, ref, no_officer, "경찰관 동의 거부").outcome == "no-police-consent"
    not_admitted = _with(admitted_at="")
    scene = _check(registry, ref, not_admitted, "병상 없음")
    assert (scene.outcome, mental_health.hold_clock(KR, scene)) == ("not-admitted", None)


def test_the_scene_is_kept_once_in_the_audit_trail_with_its_basis(registry: Database) -> None:
    ref = _case(registry)
    for _ in range(2):  # a task run again after a crash records nothing more
        with registry.transaction() as session:
            case = cases.find_case(session, ref)
            scene = mental_health.check_scene(session, case, ADMITTED, reason="", now=NOW)
            clock = mental_health.record_scene(session, case, scene, days=KR, wait="scene-1", note=None, by="coord-a")
        assert clock is not None and clock.hold_end == D(2026, 9, 22)
    with registry.transaction() as session:
        rows = session.execute(
            select(AuditEntry.actor, AuditEntry.detail).where(AuditEntry.action == "emergency-scene")
        )
        [(actor, detail)] = rows.all()
        assert not mental_health.began_step_by_step(session, cases.find_case(session, ref))
    assert actor == "coord-a"
    assert detail["admitted_at"] == "2026-09-19T23:40:00+09:00" and detail["hold_end"] == "2026-09-22"
    assert detail["basis"] == "정신건강복지법 §50③, 행정기본법 §6② 초일 산입"


def _with(**changes: str) -> SceneEntry:
    return SceneEntry(**{**ADMITTED.__dict__, **changes})
