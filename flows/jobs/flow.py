"""Job placement (일자리 연계), as a coordinator draws it on the whiteboard.

written consent → which job track (facts kept in the registry; the coordinator verifies missing ones)
  65+ with 기초연금 → 노인공익활동사업,  60+ → 노인역량활용사업
  (neither for 생계급여, 직장가입자, a 장기요양 grade, or someone in another government job programme):
      application to the 시니어클럽 within its recruitment window (outside it, the coordinator
      confirms when the next window opens) →
      placed / placed at the complex itself (the 관리사무소 takes the worker on, as C단지 does:
      escorting the worker's visits, disinfection and tidying, the grounds) /
      waiting list (a vacancy asked for 3 months on) / not selected
  on 생계급여, at any age (seniors too) → 지역자활센터 (자활근로)
  working age otherwise → 고용센터 (국민취업지원제도)
  none of these → closure with the reason: under 15, employed, in another job programme,
      excluded from senior jobs past working age
placed or participating → a check every month for 3 months (activity logs, allowance) → closure

Facts: korea_domain.md §3 (rules in ``registry.jobs``). Prefect sees the track's code and the
outcomes the agencies report, never the facts behind them.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow

from registry.jobs import EMPLOYMENT_SUPPORT, SELF_SUFFICIENCY, SENIOR_TRACKS, UNKNOWN
from tasks.case import check_case, enter_stage
from tasks.gates import CONSENT_REFUSED, close_with_approval, intake_with_consent
from tasks.handoffs import Need, ask, await_outcome, follow_up, hand_off
from tasks.jobs import assess_track, senior_recruitment
from tasks.referrals import due_in_months

PURPOSE = "job-placement"
# An application carries who the resident is: every body that may receive one is named in the consent.
CONSENTED_AGENCY_TYPES = ["senior-club", "employment-center", "self-sufficiency", "management-office"]

# What the 시니어클럽 reports on an application, and on a vacancy for a resident on its waiting list.
PLACED, PLACED_AT_COMPLEX, WAITING_LIST, NOT_SELECTED = "placed", "placed-at-complex", "waiting-list", "not-selected"
APPLICATION_OUTCOMES = (PLACED, PLACED_AT_COMPLEX, WAITING_LIST, NOT_SELECTED)
STILL_WAITING = "still-waiting"
VACANCY_OUTCOMES = (PLACED, PLACED_AT_COMPLEX, STILL_WAITING)
VACANCY_MONTHS = 3
JOB_SITE = Need("management-office", "complex-job-site")

# What the 고용센터 or the 지역자활센터 reports, and the case's outcome for each (per programme).
PARTICIPATING, NOT_ELIGIBLE, DECLINED = "participating", "not-eligible", "declined"
PROGRAMME_OUTCOMES = (PARTICIPATING, NOT_ELIGIBLE, DECLINED)
PROGRAMMES = {
    # 구직자취업촉진법 §10: the centre decides on participation within a month.
    EMPLOYMENT_SUPPORT: (Need("employment-center", "employment-support"), "employment", 1),
    SELF_SUFFICIENCY: (Need("self-sufficiency", "self-sufficiency-work"), "self-sufficiency", 0),
}

# Monthly activity logs decide the allowance: the placing agency confirms the first three months.
CHECK_MONTHS = 3

# A case assessed before no-track said why, replayed from its cache while it waits for its closure,
# closes with the outcome it would have closed with then.
LEGACY_NO_TRACK, LEGACY_NO_TRACK_OUTCOME = "no-track", "no-job-track"


@flow(name="job-placement", flow_run_name="{case_ref} job-placement 일자리 연계", persist_result=True)
def job_placement(case_ref: str) -> str:
    """Run one job placement from consent to closure; returns the case's outcome."""
    check_case(case_ref, "job-placement")
    if not intake_with_consent(case_ref, CONSENTED_AGENCY_TYPES, PURPOSE):
        return close_with_approval(case_ref, CONSENT_REFUSED)

    track = _job_track(case_ref)
    if track is None:
        return close_with_approval(case_ref, "eligibility-not-verified")
    if track in SENIOR_TRACKS:
        return _senior_job(case_ref, track)
    if track in PROGRAMMES:
        return _programme(case_ref, track)
    # No track: the code says why (registry.jobs.NO_TRACKS); the audit trail has what to do next.
    return close_with_approval(case_ref, LEGACY_NO_TRACK_OUTCOME if track == LEGACY_NO_TRACK else track)


def _job_track(case_ref: str) -> str | None:
    """The track; while a fact is unknown the coordinator records it (``yeongye jobs facts``) and confirms.

    None when the coordinator gives up (rejects with a reason, e.g. the resident would not say).
    """
    attempt = 1
    track = assess_track(case_ref, attempt)
    while track == UNKNOWN:
        if not ask(case_ref, f"job-facts-{attempt}", "job-facts", "coordinator"):
            return None
        attempt += 1
        track = assess_track(case_ref, attempt)
    return track


def _senior_job(case_ref: str, track: str) -> str:
    """Apply to the 시니어클럽 in its recruitment window, then follow the placement."""
    enter_stage(case_ref, track)
    window = senior_recruitment(case_ref, 1)
    if not window.open_today:
        # Outside the window the club fills vacancies only from its waiting list: apply in the next one.
        if not ask(case_ref, "recruitment-window", "job-recruitment-window", "coordinator", due_after=window.opens):
            return close_with_approval(case_ref, "application-withdrawn")
        window = senior_recruitment(case_ref, 2)
    application = await_outcome(
        case_ref,
        "job-application",
        Need("senior-club", track),
        outcomes=APPLICATION_OUTCOMES,
        due=dt.date.fromisoformat(window.announced),
    )
    if application.status != "completed":
        return close_with_approval(case_ref, "application-not-linked")
    placement = application.outcome
    if placement == WAITING_LIST:
        vacancy = await_outcome(
            case_ref,
            "vacancy",
            Need("senior-club", "senior-job-vacancy", application.agency_id),
            outcomes=VACANCY_OUTCOMES,
            due=due_in_months(case_ref, "vacancy", VACANCY_MONTHS),
        )
        placement = vacancy.outcome if vacancy.status == "completed" else STILL_WAITING
    if placement == STILL_WAITING:
        return close_with_approval(case_ref, "on-waiting-list")
    if placement == NOT_SELECTED:
        return close_with_approval(case_ref, "not-selected")
    if placement == PLACED_AT_COMPLEX:
        hand_off(case_ref, "job-site", [JOB_SITE])
        _monthly_checks(case_ref, Need("management-office", "job-follow-up"))
    else:
        _monthly_checks(case_ref, Need("senior-club", "job-follow-up", application.agency_id))
    return close_with_approval(case_ref, placement)


def _programme(case_ref: str, track: str) -> str:
    """Refer a working-age resident to the 고용센터 or the 지역자활센터 and follow the participation."""
    need, name, due_months = PROGRAMMES[track]
    enter_stage(case_ref, track)
    due = due_in_months(case_ref, name, due_months) if due_months else None
    report = await_outcome(case_ref, name, need, outcomes=PROGRAMME_OUTCOMES, due=due)
    if report.status != "completed":
        return close_with_approval(case_ref, f"{name}-not-linked")
    if report.outcome == PARTICIPATING:
        _monthly_checks(case_ref, Need(need.agency_type, "job-follow-up", report.agency_id))
    return close_with_approval(case_ref, f"{name}-{report.outcome}")


def _monthly_checks(case_ref: str, need: Need) -> None:
    for month in range(1, CHECK_MONTHS + 1):
        follow_up(case_ref, f"job-check-{month}m", need, months=1)
