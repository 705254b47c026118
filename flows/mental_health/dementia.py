"""Dementia screening (치매 조기검진 연계), as a coordinator draws it on the whiteboard.

written consent → screening by the 치매안심센터 → its result →
  normal: a re-screen by the centre a year later (the centre screens older residents yearly);
  cognitive decline / dementia suspected: diagnosis and follow-up by the centre (진단·감별검사,
  등록 관리), with follow-up visits at the complex, more often when dementia is suspected
→ closure approved by the supervisor.

The study finds the complexes linking with the 치매안심센터 often, since many residents are older;
D단지 finds people with dementia through early screening with the centre.
"""

from __future__ import annotations

from prefect import flow

from tasks.case import check_case
from tasks.gates import CONSENT_REFUSED, close_with_approval, intake_with_consent
from tasks.handoffs import Need, await_outcome, follow_up, hand_off

PURPOSE = "dementia-screening"
CONSENTED_AGENCY_TYPES = ["dementia-center", "management-office"]
FOLLOW_UP = Need("management-office", "follow-up-visit")

NORMAL = "normal"  # 정상
COGNITIVE_DECLINE = "cognitive-decline"  # 인지저하
DEMENTIA_SUSPECTED = "dementia-suspected"  # 치매 의심
RESULTS = (NORMAL, COGNITIVE_DECLINE, DEMENTIA_SUSPECTED)
RE_SCREEN_MONTHS = 12
# Follow-up visits at the complex after a result that is not normal, in months from the diagnosis step.
FOLLOW_UP_MONTHS = {COGNITIVE_DECLINE: (3,), DEMENTIA_SUSPECTED: (1, 3)}


@flow(name="dementia-screening", flow_run_name="{case_ref} dementia-screening 치매 조기검진 연계", persist_result=True)
def dementia_screening(case_ref: str) -> str:
    """Run one screening linkage from consent to closure; returns the case's outcome."""
    check_case(case_ref, "dementia-screening")
    if not intake_with_consent(case_ref, CONSENTED_AGENCY_TYPES, PURPOSE):
        return close_with_approval(case_ref, CONSENT_REFUSED)

    screening = await_outcome(case_ref, "screening", Need("dementia-center", "dementia-screening"), outcomes=RESULTS)
    if screening.status != "completed":
        return close_with_approval(case_ref, "screening-not-linked")

    if screening.outcome == NORMAL:
        # A normal result is final for this case; a change found at the re-screen is a new case.
        # (By agency type: ``follow_up`` dates a named agency's referral by business days, not months.)
        follow_up(
            case_ref,
            f"re-screen-{RE_SCREEN_MONTHS}m",
            Need("dementia-center", "dementia-screening"),
            months=RE_SCREEN_MONTHS,
        )
        return close_with_approval(case_ref, "screening-normal")

    # The centre that screened carries on: diagnosis (or differential diagnosis) and registration.
    hand_off(case_ref, "diagnosis", [Need("dementia-center", "dementia-follow-up", screening.agency_id)])
    previous = 0
    for months in FOLLOW_UP_MONTHS[screening.outcome]:
        follow_up(case_ref, f"follow-up-{months}m", FOLLOW_UP, months=months - previous)
        previous = months
    return close_with_approval(case_ref, screening.outcome)
