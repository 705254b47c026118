"""Mental-health counselling (정신건강 상담 연계), as a coordinator draws it on the whiteboard.

written consent → counselling referral to the 정신건강복지센터 → what the centre reports →
follow-up visit at the complex → closure approved by the supervisor.

The study finds every complex linking with the 정신건강복지센터 "any time" (수시). Counselling is
voluntary: without written consent the centre is not told who the resident is, and the complex
only keeps in touch through the management office's monitoring visits, which carry no health
details (정신건강복지법 §71, PIPA §23).
"""

from __future__ import annotations

from prefect import flow

from tasks.case import check_case
from tasks.gates import CONSENT_REFUSED, MONITORING_VISIT, close_with_approval, intake_with_consent
from tasks.handoffs import Need, await_outcome, follow_up, hand_off

PURPOSE = "mh-counselling"
# Who may learn who the resident is: the centre, and the complex's management office that visits.
CONSENTED_AGENCY_TYPES = ["mental-health-center", "management-office"]
FOLLOW_UP = Need("management-office", "follow-up-visit")
FOLLOW_UP_MONTHS = 1

# What the centre reports when the counselling referral is done, and the case's outcome for each.
REGISTERED = "registered"  # 사례관리 등록: the centre keeps the resident in its case management
COUNSELLING_ONLY = "counselling-only"  # 단기 상담으로 종결
REFERRED_TO_TREATMENT = "referred-to-treatment"  # 치료기관(정신의료기관) 연계
DECLINED_BY_RESIDENT = "declined-by-resident"  # 본인이 상담을 거부
OUTCOMES = (REGISTERED, COUNSELLING_ONLY, REFERRED_TO_TREATMENT, DECLINED_BY_RESIDENT)
CASE_OUTCOMES = {
    REGISTERED: "registered-at-centre",
    COUNSELLING_ONLY: "counselling-completed",
    REFERRED_TO_TREATMENT: "referred-to-treatment",
    DECLINED_BY_RESIDENT: "counselling-declined",
}


@flow(name="mh-counselling", flow_run_name="{case_ref} mh-counselling 정신건강 상담 연계", persist_result=True)
def mh_counselling(case_ref: str) -> str:
    """Run one counselling linkage from consent to closure; returns the case's outcome."""
    check_case(case_ref, "mh-counselling")
    if not intake_with_consent(case_ref, CONSENTED_AGENCY_TYPES, PURPOSE):
        return close_with_approval(case_ref, CONSENT_REFUSED)

    counselling = await_outcome(
        case_ref, "counselling", Need("mental-health-center", "mh-counselling"), outcomes=OUTCOMES
    )
    if counselling.status != "completed":
        # The centre declined, never answered by the final deadline, or the coordinator skipped it:
        # the supervisor decides at closure whether the complex keeps visiting.
        return close_with_approval(case_ref, "counselling-not-linked")

    if counselling.outcome == DECLINED_BY_RESIDENT:
        hand_off(case_ref, "monitoring", [MONITORING_VISIT])
    else:
        follow_up(case_ref, f"follow-up-{FOLLOW_UP_MONTHS}m", FOLLOW_UP, months=FOLLOW_UP_MONTHS)
    return close_with_approval(case_ref, CASE_OUTCOMES[counselling.outcome])
