"""Dates the Korean way: Asia/Seoul, public holidays, business days, and an injectable clock.

Every due date in yeongye comes from here, so a test or a simulation that swaps the clock moves a
whole case through months in seconds (design.md, invariant 7).
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol
from zoneinfo import ZoneInfo

import holidays

SEOUL = ZoneInfo("Asia/Seoul")


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(SEOUL)


class FixedClock:
    """A clock tests set and move by hand."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at.astimezone(SEOUL)

    def now(self) -> dt.datetime:
        return self.at

    def advance(self, delta: dt.timedelta) -> None:
        self.at += delta


def today(clock: Clock) -> dt.date:
    return clock.now().astimezone(SEOUL).date()


_KR = holidays.country_holidays("KR")


def months_later(start: dt.date, months: int) -> dt.date:
    """The same day ``months`` later, clamped to the end of a shorter month (Jan 31 + 1 = Feb 28)."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    last_day = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(start.day, last_day))


def hours_later(start: dt.datetime, hours: float) -> dt.datetime:
    """The moment ``hours`` after ``start``, in Seoul: a life-safety clock counts every hour of every
    day, weekends and holidays included (a person without a sign of life does not wait for Monday)."""
    return (start + dt.timedelta(hours=hours)).astimezone(SEOUL)


def rights_period_end(first_day: dt.date, *, days: int = 0, months: int = 0) -> dt.date:
    """Last day of a period that restricts a person's rights (e.g. an involuntary admission).

    행정기본법 §6②: the first day counts, and the period ends on its last day even when that is a
    Saturday or 공휴일. So 2 weeks from Monday end on the Sunday after next, and 3 months from
    01-05 end on 04-04.
    """
    if bool(days) == bool(months):
        raise ValueError("give either days or months")
    if days:
        return first_day + dt.timedelta(days=days - 1)
    corresponding = months_later(first_day, months)
    if corresponding.day < first_day.day:  # no such day that month: the period ends with the month (민법 §160③)
        return corresponding
    return corresponding - dt.timedelta(days=1)


class BusinessCalendar:
    """Korean public holidays (``holidays`` KR) corrected by overrides announced later.

    The Cabinet declares temporary holidays (임시공휴일) at short notice, after any library
    release; ``overrides`` maps a date to True (a holiday after all) or False (a working day).
    """

    def __init__(self, overrides: dict[dt.date, bool] | None = None) -> None:
        self.overrides = overrides or {}

    def is_business_day(self, day: dt.date) -> bool:
        """Monday to Friday, except public holidays (substitute days included) and overrides."""
        if day in self.overrides:
            return not self.overrides[day]
        return day.weekday() < 5 and day not in _KR

    def is_public_holiday(self, day: dt.date) -> bool:
        """공휴일 as the law counts it: Sundays, national and substitute holidays, and overrides.

        Saturdays are not 공휴일 (they are only days off), which matters for legal clocks such as
        the emergency-admission hold ("3 days excluding 공휴일").
        """
        if day in self.overrides:
            return self.overrides[day]
        return day.weekday() == 6 or day in _KR

    def add_days_excluding_public_holidays(self, start: dt.date, days: int) -> dt.date:
        """The date ``days`` days after ``start``, not counting 공휴일 (Saturdays do count).

        The rule of legal holds such as 정신건강복지법 §50③ ("3일, 공휴일은 제외한다").
        """
        day = start
        remaining = days
        while remaining > 0:
            day += dt.timedelta(days=1)
            if not self.is_public_holiday(day):
                remaining -= 1
        return day

    def add_business_days(self, start: dt.date, days: int) -> dt.date:
        """The date ``days`` business days after ``start`` (the first day is not counted, 민법 §157).

        A negative ``days`` counts back: ``add_business_days(due, -1)`` is the business day before.
        """
        step = dt.timedelta(days=1 if days >= 0 else -1)
        day = start
        remaining = abs(days)
        while remaining > 0:
            day += step
            if self.is_business_day(day):
                remaining -= 1
        return day

    def add_months(self, start: dt.date, months: int) -> dt.date:
        """Same day ``months`` later, clamped to the month's end; moved to the next business day."""
        return self.next_business_day(months_later(start, months))

    def add_weeks(self, start: dt.date, weeks: int) -> dt.date:
        """Same weekday ``weeks`` later; moved to the next business day (a weekly session after 추석)."""
        return self.next_business_day(start + dt.timedelta(weeks=weeks))

    def next_business_day(self, day: dt.date) -> dt.date:
        """``day`` itself if it is a business day, else the first business day after it."""
        while not self.is_business_day(day):
            day += dt.timedelta(days=1)
        return day
