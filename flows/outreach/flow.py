"""Outreach / safety check (안부확인, 고독사 예방), as a coordinator draws it on the whiteboard.

safety check: a volunteer pair (자원봉사센터), else the 행정복지센터's worker, visits or calls →
  fine            → next check in a month → closure
  needs a service → a hoarding / counselling / job-placement / housing-support case for the
                    same resident, or supplies from the 사회복지관 → closure
  no contact      → the check again within 24 hours → door check with the 관리사무소 within the
                    next 23 → welfare check by the police (else 119) at once: safe / emergency /
                    not found; these clocks run in hours, nights, weekends and holidays included
  cannot locate   → address verification at the 행정복지센터 → a check at the new address,
                    or moved out (referred on), or unknown (kept under monitoring)

The escalation follows korea_domain.md §4.3 (no-contact timers: call → visit → emergency entry
with police/119). A check that nobody could do counts as no contact, never as fine. A resident
who cannot be found is never closed as "not eligible": that branch ends in monitoring or a
referral to the new address. Only case references, agency ids and outcome codes reach Prefect.
"""

from __future__ import annotations

from prefect import flow

from tasks.case import check_case, enter_stage, publish_timeline
from tasks.gates import close_with_approval
from tasks.handoffs import Need, Outcome, await_outcome, follow_up, hand_off
from tasks.launching import launch_follow_on
from tasks.referrals import due_in_hours, record_legal_basis

# The public bodies of the check and its escalation must know whom to visit. 고독사예방법 §13 (early
# discovery of people at risk of lonely death) is the basis recorded for them, so no consent is asked.
# Volunteers are not such a body: their email carries the case reference only, and the 행정복지센터
# that organises the pair gives them the address.
DISCLOSURE_BASIS = "고독사예방법 §13"
INVOLVED_AGENCY_TYPES = [
    "community-center",
    "management-office",
    "police",
    "fire-119",
    "welfare-center",
]

# Who checks, in order: a volunteer pair (우리동네돌봄단), else the 행정복지센터's worker (복지플래너).
CHECKERS = (Need("volunteer-center", "safety-check"), Need("community-center", "safety-check"))
FINE = "fine"
NEEDS_HOARDING = "needs-service-hoarding"
NEEDS_MENTAL_HEALTH = "needs-service-mental-health"
NEEDS_JOBS = "needs-service-jobs"
NEEDS_SUPPLIES = "needs-service-supplies"
NEEDS_HOUSING = "needs-service-housing"
NO_CONTACT = "no-contact"
CANNOT_LOCATE = "cannot-locate"
NEEDS_OUTCOMES = (NEEDS_HOARDING, NEEDS_MENTAL_HEALTH, NEEDS_JOBS, NEEDS_SUPPLIES, NEEDS_HOUSING)
CHECK_OUTCOMES = (FINE, *NEEDS_OUTCOMES, NO_CONTACT, CANNOT_LOCATE)
# The intervention each need opens for the same resident.
FOLLOW_ON = {
    NEEDS_HOARDING: "hoarding",
    NEEDS_MENTAL_HEALTH: "mh-counselling",
    NEEDS_JOBS: "job-placement",
    NEEDS_HOUSING: "housing-support",
}
SUPPLIES = Need("welfare-center", "supplies")
NEXT_CHECK = Need("volunteer-center", "safety-check")
NEXT_CHECK_MONTHS = 1

# No contact is a life-safety clock, in hours on every day: the 고독사 pilots act after 24–50 hours
# without a sign of life, then call → visit → emergency entry with the police or 119 (korea_domain.md
# §4.3). The check is repeated within 24 hours, the 관리사무소 goes to the door within the next 23,
# and the police are emailed at once, their report due within 4 hours (then 119, as long again). A
# step times out at its due time (registry.escalation.HOURS) and the sweep runs every 15 minutes,
# so the police are called within 48 hours of the first "no contact" however the days fall.
REPEAT_CHECK_HOURS = 24
NO_CONTACT_CHECKS = 2  # the first check and one repeat; then someone goes to the door
DOOR_CHECK_HOURS = 23
WELFARE_CHECK_HOURS = 4
DOOR_CHECK = Need("management-office", "door-check")
FOUND_FINE, FOUND_NEEDS_HELP, NO_ANSWER = "found-fine", "found-needs-help", "no-answer"
DOOR_OUTCOMES = (FOUND_FINE, FOUND_NEEDS_HELP, NO_ANSWER)
# Found in need of help at the door: the 행정복지센터 visits to say which service.
NEEDS_ASSESSMENT = Need("community-center", "home-visit")
# The police enter with the 관리사무소 if need be; if the police cannot, the 119 rescue service does.
WELFARE_CHECKERS = (Need("police", "welfare-check"), Need("fire-119", "welfare-check"))
FOUND_SAFE, FOUND_EMERGENCY, NOT_FOUND = "found-safe", "found-emergency", "not-found"
WELFARE_OUTCOMES = (FOUND_SAFE, FOUND_EMERGENCY, NOT_FOUND)

ADDRESS_CHECK = Need("community-center", "address-verification")
LOCATED, MOVED_OUT, UNKNOWN = "located-new-address", "moved-out", "unknown"
ADDRESS_OUTCOMES = (LOCATED, MOVED_OUT, UNKNOWN)
# A resident found at a new address twice and lost again is kept under monitoring, not chased forever.
ADDRESS_VERIFICATIONS = 2


@flow(name="outreach", flow_run_name="{case_ref} outreach 안부확인", persist_result=True)
def outreach(case_ref: str) -> str:
    """Run one safety check and whatever it leads to, until the case closes; returns its outcome."""
    check_case(case_ref, "outreach")
    enter_stage(case_ref, "intake")
    record_legal_basis(case_ref, INVOLVED_AGENCY_TYPES, DISCLOSURE_BASIS)
    publish_timeline(case_ref, "intake")

    checks = no_contact = escalations = verifications = 0
    checks += 1
    result = _check(case_ref, checks)
    while True:
        if result == FINE:
            return _next_check_then_close(case_ref, "fine-next-check-planned")
        if result in NEEDS_OUTCOMES:
            return _provide(case_ref, result)
        if result == NO_CONTACT:
            no_contact += 1
            if no_contact < NO_CONTACT_CHECKS:
                checks += 1
                result = _check(case_ref, checks, repeat=True)
                continue
            escalations += 1
            result = _escalate(case_ref, escalations)
            if result != CANNOT_LOCATE:
                return result

        # Cannot locate: its own branch, never "not eligible".
        if verifications == ADDRESS_VERIFICATIONS:
            return close_with_approval(case_ref, "cannot-locate-monitoring")
        verifications += 1
        address = await_outcome(case_ref, f"address-{verifications}", ADDRESS_CHECK, outcomes=ADDRESS_OUTCOMES)
        if address.outcome == MOVED_OUT:
            # The 행정복지센터 passes the resident on to the centre of the new address (its own procedure).
            return close_with_approval(case_ref, "moved-out-referred")
        if address.outcome != LOCATED:
            return close_with_approval(case_ref, "cannot-locate-monitoring")
        no_contact = 0
        checks += 1
        result = _check(case_ref, checks)


def _check(case_ref: str, number: int, *, repeat: bool = False) -> str:
    """One safety check; a check nobody could do counts as no contact."""
    step = f"check-{number}"
    hours = REPEAT_CHECK_HOURS if repeat else 0
    report = _first_report(case_ref, step, CHECKERS, CHECK_OUTCOMES, hours=hours, one_clock=True)
    return report.outcome if report.status == "completed" else NO_CONTACT


def _escalate(case_ref: str, number: int) -> str:
    """Door check, then welfare check; returns the closed case's outcome, or CANNOT_LOCATE."""
    step = f"door-check-{number}"
    door = await_outcome(
        case_ref, step, DOOR_CHECK, outcomes=DOOR_OUTCOMES, due=due_in_hours(case_ref, step, DOOR_CHECK_HOURS)
    )
    if door.outcome == FOUND_FINE:
        return _next_check_then_close(case_ref, "fine-after-door-check")
    if door.outcome == FOUND_NEEDS_HELP:
        assessment = await_outcome(case_ref, f"needs-assessment-{number}", NEEDS_ASSESSMENT, outcomes=NEEDS_OUTCOMES)
        if assessment.status == "completed":
            return _provide(case_ref, assessment.outcome)
        return close_with_approval(case_ref, "needs-assessment-not-done")

    # No answer at the door, or the 관리사무소 could not go: the police (else 119) check on the resident.
    welfare = _first_report(
        case_ref, f"welfare-check-{number}", WELFARE_CHECKERS, WELFARE_OUTCOMES, hours=WELFARE_CHECK_HOURS
    )
    if welfare.outcome == FOUND_SAFE:
        return _next_check_then_close(case_ref, "safe-after-welfare-check")
    if welfare.outcome == FOUND_EMERGENCY:
        # The police or 119 handled the emergency; the supervisor is told through the closure approval.
        return close_with_approval(case_ref, "emergency-handled-by-police")
    if welfare.outcome == NOT_FOUND:
        return CANNOT_LOCATE
    return close_with_approval(case_ref, "welfare-check-not-done")


def _first_report(
    case_ref: str,
    step: str,
    needs: tuple[Need, ...],
    outcomes: tuple[str, ...],
    *,
    hours: int = 0,
    one_clock: bool = False,
) -> Outcome:
    """Ask each agency in turn until one reports; the first asks in ``step``, the others in their own step.

    ``hours`` puts the step on a life-safety clock. With ``one_clock`` the whole step has those
    hours (the repeat check): an agency that lets them run out is not replaced, the escalation goes
    on; one that declines hands the rest of the time to the next. Otherwise each agency has the
    hours from its own turn (the police, then 119).
    """
    report = Outcome("skipped")
    due = due_in_hours(case_ref, step, hours) if hours and one_clock else None
    for turn, need in enumerate(needs):
        own_step = step if turn == 0 else f"{step}-{need.agency_type}"
        if hours and not one_clock:
            due = due_in_hours(case_ref, own_step, hours)
        report = await_outcome(case_ref, own_step, need, outcomes=outcomes, due=due)
        if report.status == "completed" or (due is not None and one_clock and report.status == "failed"):
            return report
    return report


def _provide(case_ref: str, need: str) -> str:
    """Supplies come from the 사회복지관 in this case; every other need opens its own case."""
    if need == NEEDS_SUPPLIES:
        hand_off(case_ref, "supplies", [SUPPLIES])
        return close_with_approval(case_ref, "supplies-provided")
    intervention = FOLLOW_ON[need]
    enter_stage(case_ref, f"follow-on-{intervention}")
    launch_follow_on(case_ref, intervention)
    return close_with_approval(case_ref, f"linked-{intervention}")


def _next_check_then_close(case_ref: str, outcome: str) -> str:
    follow_up(case_ref, f"next-check-{NEXT_CHECK_MONTHS}m", NEXT_CHECK, months=NEXT_CHECK_MONTHS)
    return close_with_approval(case_ref, outcome)
