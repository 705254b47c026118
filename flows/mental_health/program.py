"""A joint mind-health programme (마음건강 교육) for a complex, as a coordinator draws it on the whiteboard.

joint planning with the partner (the 정신건강복지센터's instructors) → supervisor approves the plan
and budget → recruitment: residents invited, isolated ones first, and enrolled → monthly sessions,
each confirmed by the coordinator after recording attendance → report to the partner → closure.

The study's A단지 runs such a programme with seven other LH complexes: monthly since 2024, with
instructors from the 정신건강복지센터 (마음건강관리교육, 생명존중교육, 감정코칭 ...). The case is for
the complex, not for one resident: who was invited and who came lives in the registry
(``yeongye program enrol`` / ``attend``); this flow sees counts only.
"""

from __future__ import annotations

from prefect import flow

from tasks.case import enter_stage, publish_timeline
from tasks.gates import close_with_approval
from tasks.handoffs import Need, ask, hand_off
from tasks.programs import (
    PLANNING_STEP,
    count_enrolled,
    open_recruitment,
    program_partner,
    publish_report,
    record_session,
)

PARTNER_TYPE = "mental-health-center"
DEFAULT_SESSIONS = 3
DEFAULT_SEATS = 20


@flow(name="mh-program", flow_run_name="{case_ref} mh-program 마음건강 교육 프로그램", persist_result=True)
def mh_program(case_ref: str, sessions: int = DEFAULT_SESSIONS, seats: int = DEFAULT_SEATS) -> str:
    """Run one programme from joint planning to closure; returns the case's outcome.

    ``sessions`` monthly sessions; ``seats`` residents invited (living alone first, then the oldest).
    """
    enter_stage(case_ref, "intake")
    publish_timeline(case_ref, "intake")

    hand_off(case_ref, PLANNING_STEP, [Need(PARTNER_TYPE, "mh-program")])
    partner = program_partner(case_ref, PLANNING_STEP)
    if not partner:
        return close_with_approval(case_ref, "no-partner", extra=Need(PARTNER_TYPE, "mh-program"))
    report_need = Need(PARTNER_TYPE, "mh-program-report", partner)

    if not ask(case_ref, "program-plan", "program-plan"):
        return _close_early(case_ref, "plan-not-approved", partner)

    recruitment = open_recruitment(case_ref, sessions, seats)
    publish_timeline(case_ref, "recruitment")
    recruited = ask(case_ref, "recruitment", "program-recruitment", "coordinator")
    if not recruited or count_enrolled(case_ref, "recruitment") == 0:
        return _close_early(case_ref, "no-participants", partner)

    for number, planned_on in enumerate(recruitment.session_dates, start=1):
        held = ask(case_ref, f"session-{number}", "program-session", "coordinator", due_after=planned_on)
        record_session(case_ref, number, held)

    enter_stage(case_ref, "report")
    publish_report(case_ref, "report")
    hand_off(case_ref, "report", [report_need])
    return close_with_approval(
        case_ref, "program-completed", extra=report_need, extra_months=0, extra_step="report-revision"
    )


def _close_early(case_ref: str, outcome: str, partner: str) -> str:
    """Close before any session; a supervisor not yet satisfied sends the partner back to planning first."""
    return close_with_approval(
        case_ref, outcome, extra=Need(PARTNER_TYPE, "mh-program", partner), extra_months=0, extra_step="re-planning"
    )
