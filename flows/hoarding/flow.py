"""Hoarding remediation (저장강박 주거환경개선), as a coordinator draws it on the whiteboard.

detection → home visit → written consent (hard gate) → case conference → the roles it gave out →
budget → cleaning → repairs → mental-health linkage → aftercare → follow-ups at 1, 3, 6 months →
closure.

Agencies and services follow the study's table 2 and the ordinance practice in
shared/reference/korea_domain.md §2. Refusal of consent leads to monitoring and re-approach and
never to cleaning: there is no override path.
"""

from __future__ import annotations

from prefect import flow

from tasks.case import check_case, enter_stage, publish_timeline
from tasks.conferences import hold_conference
from tasks.gates import close_with_approval, consent_gate
from tasks.handoffs import Need, ask, follow_up, hand_off

CONSENT_ATTEMPTS = 3
FOLLOW_UP_MONTHS = (1, 3, 6)

# Who may learn the resident's details once they consent in writing, and for what.
CONSENTED_AGENCY_TYPES = [
    "district-office",
    "community-center",
    "management-office",
    "cleaning-coop",
    "lh",
    "probation-support",
    "mental-health-center",
    "public-health-center",
    "elder-protection",
    "welfare-center",
    "family-center",
]
PURPOSE = "hoarding-remediation"


@flow(name="hoarding", flow_run_name="{case_ref} hoarding 저장강박 주거환경개선", persist_result=True)
def hoarding(case_ref: str) -> str:
    """Run one hoarding case from detection to closure; returns its outcome."""
    check_case(case_ref, "hoarding")
    enter_stage(case_ref, "intake")
    publish_timeline(case_ref, "intake")

    hand_off(
        case_ref,
        "assessment",
        [
            Need("community-center", "home-visit"),
            Need("management-office", "environment-review"),
        ],
    )

    consent = consent_gate(
        case_ref,
        CONSENTED_AGENCY_TYPES,
        PURPOSE,
        re_approach=Need("community-center", "monitoring-visit"),
        attempts=CONSENT_ATTEMPTS,
    )
    if consent is None:
        return close_with_approval(case_ref, "consent-refused-monitoring")

    conference = hold_conference(
        case_ref,
        "conference",
        [
            Need("district-office", "case-conference"),
            Need("community-center", "case-conference"),
            Need("management-office", "case-conference"),
            Need("mental-health-center", "case-conference"),
            Need("public-health-center", "case-conference"),
            Need("welfare-center", "case-conference"),
        ],
    )
    if not conference.proceed:
        return close_with_approval(case_ref, "not-proceeding-after-conference")
    if conference.roles:
        hand_off(case_ref, "conference-roles", conference.needs())

    if not ask(case_ref, "budget", "budget"):
        return close_with_approval(case_ref, "budget-refused")
    hand_off(case_ref, "budget", [Need("district-office", "budget")])

    hand_off(case_ref, "cleaning", [Need("cleaning-coop", "cleaning")])

    hand_off(
        case_ref,
        "repairs",
        [
            Need("lh", "repairs"),
            Need("probation-support", "wallpaper-flooring"),
        ],
    )

    mental_health = [
        Need("mental-health-center", "mental-health"),
        Need("public-health-center", "treatment-linkage"),
    ]
    if consent.signer == "guardian":
        mental_health.append(Need("elder-protection", "guardianship"))
    hand_off(case_ref, "mental-health", mental_health)

    hand_off(
        case_ref,
        "aftercare",
        [
            Need("welfare-center", "supplies-programs"),
            Need("family-center", "counselling-tidying"),
        ],
    )
    previous = 0
    for months in FOLLOW_UP_MONTHS:
        follow_up(
            case_ref, f"follow-up-{months}m", Need("management-office", "follow-up-visit"), months=months - previous
        )
        previous = months

    return close_with_approval(case_ref, "remediated")
