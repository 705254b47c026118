"""A partner programme for a complex, as a coordinator draws it on the whiteboard.

joint planning with the kind's partner agencies (one handoff each, in parallel) → supervisor
approves the plan and budget → recruitment: residents invited, isolated ones first, and enrolled →
sessions every month or every week, each confirmed by the coordinator after recording attendance →
report to every partner that planned → closure approved by the supervisor.

The kinds come from the 2024 study (``registry.programs.KINDS``): A단지's monthly 마음건강 교육 with
the 정신건강복지센터, its outings for isolated households on a church's bus and F단지's train trip with
Korail, cultural activities with the 문화재단, a weekly meal with a private donor, and the 어버이날
event with the 행정복지센터, the 사회복지관, the 지역사회보장협의체 and the 주민자치위원회. The case is
for the complex, not for one resident: who was invited and who came lives in the registry
(``yeongye program enrol`` / ``attend``); this flow sees the kind, agency ids and counts only.
"""

from __future__ import annotations

from prefect import flow

from tasks.case import check_case, enter_stage, publish_timeline
from tasks.gates import close_with_approval
from tasks.handoffs import Need, ask, hand_off
from tasks.programs import (
    PLANNING_STEP,
    count_enrolled,
    open_recruitment,
    program_kind,
    program_partners,
    publish_report,
    record_session,
)

PLANNING = "program-planning"
REPORT = "program-report"


@flow(name="program", flow_run_name="{case_ref} program 협력 프로그램", persist_result=True)
def program(case_ref: str, sessions: int | None = None, seats: int | None = None) -> str:
    """Run one programme from joint planning to closure; returns the case's outcome.

    ``sessions`` at the kind's cadence and ``seats`` residents invited (living alone first, then
    the oldest); None takes the kind's usual numbers.
    """
    check_case(case_ref, "program")
    enter_stage(case_ref, "intake")
    publish_timeline(case_ref, "intake")
    kind = program_kind(case_ref)

    hand_off(case_ref, PLANNING_STEP, [Need(partner_type, PLANNING) for partner_type in kind.partners])
    partners = program_partners(case_ref, PLANNING_STEP)
    if not partners:
        return _close_early(case_ref, "no-partner", Need(kind.partners[0], PLANNING))
    lead = partners[0]
    lead_plans_again = Need(lead.agency_type, PLANNING, lead.agency_id)

    if not ask(case_ref, "program-plan", "program-plan"):
        return _close_early(case_ref, "plan-not-approved", lead_plans_again)

    recruitment = open_recruitment(
        case_ref, kind.sessions if sessions is None else sessions, kind.seats if seats is None else seats
    )
    publish_timeline(case_ref, "recruitment")
    recruited = ask(case_ref, "recruitment", "program-recruitment", "coordinator")
    if not recruited or count_enrolled(case_ref, "recruitment") == 0:
        return _close_early(case_ref, "no-participants", lead_plans_again)

    for number, planned_on in enumerate(recruitment.session_dates, start=1):
        held = ask(case_ref, f"session-{number}", "program-session", "coordinator", due_after=planned_on)
        record_session(case_ref, number, held)

    enter_stage(case_ref, "report")
    publish_report(case_ref, "report")
    hand_off(case_ref, "report", [Need(p.agency_type, REPORT, p.agency_id) for p in partners])
    return close_with_approval(
        case_ref,
        "program-completed",
        extra=Need(lead.agency_type, REPORT, lead.agency_id),
        extra_months=0,
        extra_step="report-revision",
    )


def _close_early(case_ref: str, outcome: str, planner: Need) -> str:
    """Close before any session; a supervisor not yet satisfied sends the lead partner back to planning first."""
    return close_with_approval(case_ref, outcome, extra=planner, extra_months=0, extra_step="re-planning")
