"""Steps of job placement that read the resident's facts: they run here, so the flow sees codes only.

Whether a resident receives the 기초연금 or the 생계급여 is personal data; it stays in the registry
(``registry.jobs``). These tasks return a track's code (or the code of why there is none) and dates.
"""

from __future__ import annotations

from dataclasses import dataclass

from registry import calendar, cases, jobs
from tasks import runtime
from tasks.log import logger
from tasks.retry import handoff_task


@handoff_task(name="job-track", task_run_name="job-track-{attempt}")
def assess_track(case_ref: str, attempt: int) -> str:
    """The resident's job track under today's rules, a no-track code saying why there is none, or
    ``UNKNOWN`` until every fact is recorded.

    Only the code leaves the registry: the reasons ("basic-pension", "livelihood-benefit" ...)
    would tell Prefect which benefits the resident receives, so they go to the audit trail, with
    the code's label (what it means and what the coordinator can do next).
    ``attempt`` tells apart the assessments of one run (after the coordinator recorded the facts).
    """
    today = calendar.today(runtime.clock())
    with runtime.transaction() as session:
        case = cases.find_case(session, case_ref)
        assert case.resident is not None, "job placement is for one resident"
        track = jobs.assess(case.resident, today)
        cases.audit(
            session,
            case,
            "flow",
            "job-track",
            track=track.code,
            reasons=list(track.reasons),
            reason=jobs.label(track.code),
        )
    logger(case_ref, "job-track").info("job-track", track=track.code)
    return track.code


@dataclass(frozen=True)
class Window:
    """The 시니어클럽's recruitment window as seen today (ISO dates, so it reads well in Prefect)."""

    opens: str
    closes: str
    announced: str
    open_today: bool


@handoff_task(name="senior-recruitment", task_run_name="recruitment-window-{attempt}")
def senior_recruitment(case_ref: str, attempt: int) -> Window:
    """The recruitment window open today, else the next one (``YEONGYE_SENIOR_JOBS_RECRUITMENT``)."""
    today = calendar.today(runtime.clock())
    with runtime.transaction() as session:
        window = jobs.recruitment_window(
            today, runtime.settings().senior_jobs_recruitment, runtime.business_calendar(session)
        )
    return Window(
        window.opens.isoformat(), window.closes.isoformat(), window.announced.isoformat(), window.is_open(today)
    )
