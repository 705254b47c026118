"""Due dates in Korean business days, driven by an injected clock."""

from __future__ import annotations

import datetime as dt
import json

from pytest import MonkeyPatch
from typer.testing import CliRunner

from registry import cases
from registry.calendar import SEOUL, BusinessCalendar, FixedClock, SystemClock, rights_period_end, today
from registry.db import Database
from registry.models import Referral
from tasks import runtime
from tasks.referrals import open_referral
from tests.driving import token_of
from yeongye.cli import app

KR = BusinessCalendar()


def test_business_days_skip_chuseok_and_hangul_day() -> None:
    # 2025-10-03 개천절, 10-05..08 추석 and its substitute day, 10-09 한글날: hand-computed.
    assert KR.add_business_days(dt.date(2025, 10, 2), 3) == dt.date(2025, 10, 14)
    assert KR.add_business_days(dt.date(2025, 10, 2), 5) == dt.date(2025, 10, 16)


def test_months_land_on_a_business_day() -> None:
    # Feb 28 is a Saturday, Mar 1 (삼일절) a Sunday and Mar 2 its substitute holiday.
    assert KR.add_months(dt.date(2026, 1, 31), 1) == dt.date(2026, 3, 3)
    assert KR.add_months(dt.date(2026, 11, 23), 3) == dt.date(2027, 2, 23)


def test_sundays_and_holidays_are_public_holidays_saturdays_are_not() -> None:
    assert KR.is_public_holiday(dt.date(2026, 11, 22))  # a Sunday
    assert not KR.is_public_holiday(dt.date(2026, 11, 21))  # a Saturday: a day off, not 공휴일
    assert KR.is_public_holiday(dt.date(2026, 9, 25))  # 추석
    assert not KR.is_public_holiday(dt.date(2026, 11, 23))
    declared = BusinessCalendar({dt.date(2026, 11, 23): True, dt.date(2026, 11, 22): False})
    assert declared.is_public_holiday(dt.date(2026, 11, 23))
    assert not declared.is_public_holiday(dt.date(2026, 11, 22))


def test_legal_holds_skip_public_holidays_but_count_saturdays() -> None:
    # From Thu 2025-10-02: 10-03 개천절 out, Sat 10-04 counts, 10-05..08 추석 and substitute out,
    # 10-09 한글날 out, Fri 10-10, Sat 10-11: the third day (reference: korea_domain.md §6.4).
    assert KR.add_days_excluding_public_holidays(dt.date(2025, 10, 2), 3) == dt.date(2025, 10, 11)


def test_periods_restricting_rights_count_the_first_day_and_end_on_weekends_too() -> None:
    assert rights_period_end(dt.date(2026, 1, 5), days=14) == dt.date(2026, 1, 18)  # a Sunday
    assert rights_period_end(dt.date(2026, 1, 5), months=3) == dt.date(2026, 4, 4)  # a Saturday
    assert rights_period_end(dt.date(2026, 11, 30), months=3) == dt.date(2027, 2, 28)  # no Feb 30: month's end


def test_counting_back_skips_holidays() -> None:
    # The business day before Monday 2026-12-28 is Thursday 12-24 (Christmas Friday in between).
    assert KR.add_business_days(dt.date(2026, 12, 28), -1) == dt.date(2026, 12, 24)


def _due_dates(
    db: Database, resident_ref: str, now: dt.datetime, *referrals: tuple[str, str, str, int]
) -> list[dt.date]:
    """Open a case, then open referrals (step, agency type, service, months) with the clock at ``now``."""
    with db.transaction() as session:
        case_ref = cases.open_case(
            session,
            intervention="hoarding",
            complex_code=resident_ref[2],
            resident_ref=resident_ref,
            opened_at=now,
            by=f"coord-{resident_ref[2].lower()}",
        ).ref
    runtime.use_clock(FixedClock(now))
    try:
        handoffs = [
            open_referral.fn(case_ref, step, kind, service, months) for step, kind, service, months in referrals
        ]
    finally:
        runtime.use_clock(SystemClock())
    with db.transaction() as session:
        return [session.get(Referral, h.referral_id).due_date for h in handoffs]  # type: ignore[union-attr]


def test_referral_due_date_follows_the_injected_clock(registry: Database) -> None:
    due = _due_dates(
        registry,
        "R-A-002",
        dt.datetime(2025, 10, 2, 9, 0, tzinfo=SEOUL),
        ("assessment", "community-center", "home-visit", 0),
        ("follow-up-1m", "management-office", "follow-up-visit", 1),
    )
    assert due == [dt.date(2025, 10, 16), dt.date(2025, 11, 3)]


def test_a_temporary_holiday_declared_later_moves_due_dates(registry: Database, monkeypatch: MonkeyPatch) -> None:
    """2026-12-24 (a Thursday) declared a holiday later moves a 5-business-day due date from 12-29 to 12-30."""
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "admin-central"))  # the central centre's admin sets it
    result = CliRunner().invoke(app, ["holiday", "2026-12-24", "임시공휴일"])
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(app, ["holiday", "2026-13-01", "x"]).exit_code == 2
    # 12-21 + 5 business days: 22, 23, (24 holiday), (25 Christmas), 28, 29, 30.
    due = _due_dates(
        registry,
        "R-C-001",
        dt.datetime(2026, 12, 21, 9, 0, tzinfo=SEOUL),
        ("assessment", "community-center", "home-visit", 0),
    )
    assert due == [dt.date(2026, 12, 30)]


def test_overdue_lists_late_handoffs_by_coordinator_and_agency(registry: Database, monkeypatch: MonkeyPatch) -> None:
    _due_dates(
        registry,
        "R-D-003",
        dt.datetime(2025, 10, 2, 9, 0, tzinfo=SEOUL),
        ("assessment", "community-center", "home-visit", 0),
    )
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-a"))  # another centre's coordinator
    other_centre = CliRunner().invoke(app, ["overdue", "--json"])
    assert other_centre.exit_code == 0 and json.loads(other_centre.output) == []
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-d"))
    result = CliRunner().invoke(app, ["overdue", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["coordinator"], r["waiting_on"], r["due"]) for r in rows] == [("coord-d", "gaon-cc-1", "2025-10-16")]
    assert rows[0]["days_late"] == (today(SystemClock()) - dt.date(2025, 10, 16)).days
    table = CliRunner().invoke(app, ["overdue"])
    assert "coord-d" in table.output and "gaon-cc-1" in table.output
