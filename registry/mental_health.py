"""The legal clocks of involuntary psychiatric admission (정신건강복지법), as plain date arithmetic.

Each function maps one provision to the date it fixes, so the rules can be checked by hand and in
unit tests without Prefect. Where the statute gives no number of days ("지체 없이", without delay),
the date is yeongye's own practice and says so. Sources: shared/reference/korea_domain.md §1 and
§6.4 (행정기본법 §6②: periods that restrict a person's rights count their first day and end on
their last day, even on a weekend or 공휴일).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from registry.calendar import BusinessCalendar, rights_period_end

EMERGENCY_HOLD_DAYS = 3  # §50③: "3일(공휴일은 제외한다)"
DIAGNOSTIC_ADMISSION_DAYS = 14  # §44④: "2주일 이내"
APPROPRIATENESS_REPORT_BUSINESS_DAYS = 3  # §45: "3일 이내", counted as business days in practice
APPROPRIATENESS_DECISION_MONTHS = 1  # §47③: "최초로 입원등을 한 날부터 1개월 이내"
ADMINISTRATIVE_ADMISSION_MONTHS = 3  # §62①: "최초로 입원한 날부터 3개월 이내"
FIRST_EXTENSION_MONTHS = 3  # §62②: first extension ≤ 3 months
LATER_EXTENSION_MONTHS = 6  # §62②: each later extension ≤ 6 months


def emergency_hold_end(days: BusinessCalendar, admitted: dt.date) -> dt.date:
    """Last day the hospital may hold the person (§50③): 3 days after admission, 공휴일 not counted.

    Sundays, national holidays and declared overrides are skipped; Saturdays count (they are
    days off, not 공휴일). The day of admission itself is not one of the 3 days.
    """
    return days.add_days_excluding_public_holidays(admitted, EMERGENCY_HOLD_DAYS)


def emergency_notice_due(admitted: dt.date) -> dt.date:
    """When the hospital should have sent the guardian its written notice (§50⑥, "지체 없이").

    The law gives no number of days. yeongye expects it by the day after admission, so that an
    unconfirmed notice times out (the day after that) while the 3-day hold is still running:
    the hold always ends at least 3 calendar days after admission.
    """
    return admitted + dt.timedelta(days=1)


def without_delay(days: BusinessCalendar, start: dt.date) -> dt.date:
    """Due date of an act the law wants "즉시" or "지체 없이" from a district office: the next business day.

    The office works business days; yeongye's practice, not a number from the statute (§44③⑤⑧).
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
    """Last day of the diagnostic admission (§44④, ≤ 2 weeks; first day counted, 행정기본법 §6②)."""
    return rights_period_end(first_day, days=DIAGNOSTIC_ADMISSION_DAYS)


def appropriateness_report_due(days: BusinessCalendar, first_day: dt.date) -> dt.date:
    """Last day for the hospital's report to the 입원적합성심사위원회 (§45: "3일 이내").

    Counted as 3 business days after admission (first day not counted, Saturdays and 공휴일 out),
    following the hospital practice noted in the reference (§6.4: "입원신고 3일 이내 (토요일 및
    공휴일 제외)"); this is practice, not the statute's own words.
    """
    return days.add_business_days(first_day, APPROPRIATENESS_REPORT_BUSINESS_DAYS)


def appropriateness_decision_due(first_day: dt.date) -> dt.date:
    """Last day for the committee's written decision (§47③: 1 month from the first admission)."""
    return rights_period_end(first_day, months=APPROPRIATENESS_DECISION_MONTHS)


def release_due(first_day: dt.date) -> dt.date:
    """Last day of an administrative admission unless extended (§62①: 3 months from the first day)."""
    return rights_period_end(first_day, months=ADMINISTRATIVE_ADMISSION_MONTHS)


def extension_end(period_end: dt.date, extension: int) -> dt.date:
    """Last day of the ``extension``-th extension (§62②), which starts the day after ``period_end``.

    The first extension lasts at most 3 months, each later one at most 6.
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
