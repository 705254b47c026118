"""Linkage (연계), as a coordinator draws it on the whiteboard:

written consent (the agency learns who the resident is only with it) → the referral to the chosen
agency type for the named service, with the deadlines, answer links and fallback of every handoff
(a declining agency hands on to the next of its type; when none is left the coordinator names one)
→ closure approved by the supervisor. A refusal of consent closes the case: nobody is told anything.
"""

from __future__ import annotations

from prefect import flow

from tasks.case import check_case, enter_stage, publish_timeline
from tasks.gates import close_with_approval
from tasks.handoffs import Need, hand_off, obtain_consent

PURPOSE = "linkage"


@flow(name="linkage", flow_run_name="{case_ref} linkage 기관 연계 {agency_type}", persist_result=True)
def linkage(case_ref: str, agency_type: str, service: str) -> str:
    """Refer the case's resident to an agency of ``agency_type`` for ``service``; returns the outcome."""
    check_case(case_ref, "linkage")
    enter_stage(case_ref, "intake")
    publish_timeline(case_ref, "intake")

    consent = obtain_consent(case_ref, 1, [agency_type], PURPOSE)
    if not consent.given:
        return close_with_approval(case_ref, "consent-refused")

    hand_off(case_ref, "linkage", [Need(agency_type, service)])
    return close_with_approval(case_ref, "linked")
