"""Hoarding remediation (저장강박 주거환경개선), as a coordinator draws it on the whiteboard.

detection → home visit → what it found: a crisis opens an emergency or administrative admission
case, linked to this one (the police escort an administrative admission); a resident who cannot
decide and has no one to decide for them gets a guardian first → written consent (hard gate) →
case conference → the roles it gave out → budget → cleaning (with the police where the visit found
a safety risk) → repairs → mental-health linkage → aftercare → follow-ups at 1, 3, 6 months →
closure.

Agencies and services follow the study's table 2 and the ordinance practice in
shared/reference/korea_domain.md §2. Refusal of consent leads to monitoring and re-approach and
never to cleaning: there is no override path.
"""

from __future__ import annotations

from prefect import flow

from registry.hoarding import Consequences
from tasks.case import check_case, enter_stage, publish_timeline
from tasks.conferences import hold_conference
from tasks.gates import close_with_approval, consent_gate
from tasks.handoffs import Need, ask, follow_up, hand_off
from tasks.hoarding import home_visit_consequences
from tasks.launching import launch_follow_on
from tasks.referrals import record_legal_basis

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
    "police",
]
PURPOSE = "hoarding-remediation"

# No one can consent for a resident who cannot decide and has no guardian: the guardianship comes
# first. 민법 §9① lets the head of the local government petition for it, which is the basis on
# which these bodies learn who the resident is (registry.hoarding says what the reference leaves open).
GUARDIANSHIP = [Need("elder-protection", "guardianship"), Need("district-office", "guardianship-petition")]
GUARDIANSHIP_BASIS = "민법 §9① (성년후견개시 청구)"
ADMISSION_ESCORT = Need("police", "admission-escort")
SAFETY_SUPPORT = Need("police", "safety-support")


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
    visit = _home_visit(case_ref)
    if visit is None:
        return close_with_approval(case_ref, "no-hoarding-found")
    if visit.admission:
        # The admission runs by the law's own procedure in its own case; this one goes on beside it.
        enter_stage(case_ref, f"follow-on-{visit.admission}")
        launch_follow_on(case_ref, visit.admission)
        if visit.admission == "administrative-admission":
            hand_off(case_ref, "admission-escort", [ADMISSION_ESCORT])
    if visit.guardianship:
        record_legal_basis(case_ref, [n.agency_type for n in GUARDIANSHIP], GUARDIANSHIP_BASIS)
        hand_off(case_ref, "guardianship", GUARDIANSHIP)

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

    cleaning = [Need("cleaning-coop", "cleaning")]
    if visit.police_at_cleaning:
        cleaning.append(SAFETY_SUPPORT)
    hand_off(case_ref, "cleaning", cleaning)

    hand_off(
        case_ref,
        "repairs",
        [
            Need("lh", "repairs"),
            Need("probation-support", "wallpaper-flooring"),
        ],
    )

    hand_off(
        case_ref,
        "mental-health",
        [
            Need("mental-health-center", "mental-health"),
            Need("public-health-center", "treatment-linkage"),
        ],
    )

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


def _home_visit(case_ref: str) -> Consequences | None:
    """The coordinator records what the home visit found and confirms it; None when they reject
    (no hoarding household after all). A confirmation with nothing recorded means nothing of concern."""
    if not ask(case_ref, "home-visit", "home-visit-findings", "coordinator"):
        return None
    return home_visit_consequences(case_ref)
