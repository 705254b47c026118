"""Starting a legal clock: read today and the holiday calendar once, inside a task.

A flow replays its code on every resume; a clock read in the flow itself would give another day
when a case resumes days later. As tasks, the dates are computed once, persisted with the run and
replayed unchanged. The rules themselves are in ``registry.mental_health``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from registry import calendar, cases, mental_health, notes
from registry.models import Case
from tasks import runtime
from tasks.log import logger
from tasks.retry import handoff_task
from tasks.waits import record_or_refuse


def _today_and_days() -> tuple[dt.date, calendar.BusinessCalendar]:
    with runtime.transaction() as session:
        days = runtime.business_calendar(session)
    return calendar.today(runtime.clock()), days


# Where an emergency admission's hold clock starts (``emergency_clock_origin``).
ON_SCENE, ESCORT_REPORT = "on-scene", "escort-report"


@handoff_task(name="emergency-clock-origin", task_run_name="emergency-clock-origin")
def emergency_clock_origin(case_ref: str) -> str:
    """Where this case's hold clock starts: the on-scene record (``ON_SCENE``), or, for a case begun
    before that record existed, the day the escort reported the admission (``ESCORT_REPORT``).

    Such a case asked for the doctor's consent first, and its run must replay the waits it has
    answered, in their order. Read once, so the answer never changes for a run.
    """
    with runtime.transaction() as session:
        began = mental_health.began_step_by_step(session, cases.find_case(session, case_ref))
    return ESCORT_REPORT if began else ON_SCENE


@dataclass(frozen=True)
class OnScene:
    """What the flow needs of the on-scene record: how the scene ended, the hospital, the hold's dates."""

    outcome: str  # mental_health.ADMITTED, or the consent or admission that did not happen
    hospital: str = ""
    clock: mental_health.EmergencyClock | None = None


@handoff_task(name="record-emergency-scene", task_run_name="{wait}-recorded")
def record_emergency_scene(
    case_ref: str, wait: str, entry: mental_health.SceneEntry, reason_note: int | None, act: int | None
) -> OnScene | None:
    """Check and keep the on-scene record given at ``wait`` as its signer's (``act``), and start the
    hold's clock from the recorded admission (§50③); None (audited) if it cannot be used.

    The clock runs from the time the person was admitted, however long after it the record comes.
    What the person wrote is the registry note ``reason_note``.
    """

    def write(session: Session, case: Case, by: str) -> OnScene:
        reason = notes.text_of(session, case, reason_note, notes.REASON, "reason_note (--reason)")
        scene = mental_health.check_scene(session, case, entry, reason=reason, now=runtime.clock().now())
        days = runtime.business_calendar(session)
        clock = mental_health.record_scene(session, case, scene, days=days, wait=wait, note=reason_note, by=by)
        return OnScene(scene.outcome, scene.hospital_agency_id, clock)

    recorded = record_or_refuse(case_ref, act, wait, write)
    if recorded is not None:
        logger(case_ref, wait).info("scene-recorded", outcome=recorded.outcome)
    return recorded


@handoff_task(name="emergency-clock", task_run_name="emergency-clock")
def start_emergency_clock(case_ref: str) -> mental_health.EmergencyClock:
    """The hold starts today, the day the escort reported the person admitted (§50③, §50⑥).

    Only for a case begun before the on-scene record (``ESCORT_REPORT``); the others start their
    clock from the recorded admission (``record_emergency_scene``).
    """
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
