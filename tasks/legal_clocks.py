"""Starting a legal clock: read today and the holiday calendar once, inside a task.

A flow replays its code on every resume; a clock read in the flow itself would give another day
when a case resumes days later. As tasks, the dates are computed once, persisted with the run and
replayed unchanged. The rules themselves are in ``registry.mental_health``.
"""

from __future__ import annotations

import datetime as dt

from registry import calendar, mental_health
from tasks import runtime
from tasks.retry import handoff_task


def _today_and_days() -> tuple[dt.date, calendar.BusinessCalendar]:
    with runtime.transaction() as session:
        days = runtime.business_calendar(session)
    return calendar.today(runtime.clock()), days


@handoff_task(name="emergency-clock", task_run_name="emergency-clock")
def start_emergency_clock(case_ref: str) -> mental_health.EmergencyClock:
    """The hold starts today, the day the escort reported the person admitted (§50③, §50⑥)."""
    today, days = _today_and_days()
    return mental_health.emergency_clock(days, today)


@handoff_task(name="administrative-clock", task_run_name="administrative-clock")
def start_administrative_clock(case_ref: str) -> mental_health.AdministrativeClock:
    """The diagnostic admission's first day is today, the day the hospital reported it (§44④, §62①)."""
    today, days = _today_and_days()
    return mental_health.administrative_clock(days, today)


@handoff_task(name="due-without-delay", task_run_name="{step}-due")
def due_without_delay(case_ref: str, step: str) -> dt.date:
    """Due date of a step the law wants done "즉시"/"지체 없이" by an office: the next business day.

    ``step`` tells apart the calls of one run (each is its own day).
    """
    today, days = _today_and_days()
    return mental_health.without_delay(days, today)


@handoff_task(name="extension-clock", task_run_name="extension-{extension}-clock")
def extend_admission(case_ref: str, period_end: dt.date, extension: int) -> dt.date:
    """Last day of the ``extension``-th extension after the review board's review (§62②)."""
    return mental_health.extension_end(period_end, extension)
