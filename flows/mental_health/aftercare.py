"""Aftercare after an involuntary admission (정신건강복지법 §52), shared by both admission flows.

discharged → consent to tell the 정신건강복지센터 (or the §52② exception) → registration and a
support plan at the centre → programmes of the 사회복지관 → follow-up visits by the 관리사무소 at
1, 3 and 6 months → closure.

A plain function, not a deployment: aftercare belongs to the case that discharged the person.
The centre learns of the person only with their (or their guardian's) consent (§52①), or when
the supervisor confirms the conditions of §52② (a psychiatrist found that stopping treatment
risks rapid deterioration; after a refusal, the review board has reviewed it, §52④). Without
either, the centre is not contacted and the complex's own follow-up goes on without health details.
"""

from __future__ import annotations

from tasks.case import close_case, enter_stage, publish_timeline
from tasks.handoffs import Need, ask, follow_up, hand_off, obtain_consent
from tasks.referrals import record_legal_basis

# Who may learn who the person is, with their consent, for aftercare.
CONSENTED_AGENCY_TYPES = ["mental-health-center", "welfare-center", "management-office"]
PURPOSE = "mh-aftercare"
EXCEPTION_BASIS = "정신건강복지법 §52②"
FOLLOW_UP_MONTHS = (1, 3, 6)


def aftercare(case_ref: str, outcome: str) -> str:
    """Link the discharged person to the community, then close the case with ``outcome``.

    The discharge itself (``outcome``, e.g. "discharged-at-deadline") is recorded as a stage, so the
    case's history shows when and why the person left the hospital, months before the closure.
    """
    enter_stage(case_ref, outcome)
    consent = obtain_consent(case_ref, 1, CONSENTED_AGENCY_TYPES, PURPOSE)
    registered = consent.given
    if not registered and ask(case_ref, "aftercare-exception", "mh-aftercare-exception"):
        record_legal_basis(case_ref, ["mental-health-center"], EXCEPTION_BASIS)
        registered = True

    if registered:
        hand_off(case_ref, "mh-registration", [Need("mental-health-center", "mh-registration")])
        # §52⑥: the centre counsels the person and draws up a rehabilitation and support plan.
        hand_off(case_ref, "support-plan", [Need("mental-health-center", "support-plan")])

    hand_off(case_ref, "community-programs", [Need("welfare-center", "supplies-programs")])
    previous = 0
    for months in FOLLOW_UP_MONTHS:
        follow_up(
            case_ref, f"follow-up-{months}m", Need("management-office", "follow-up-visit"), months=months - previous
        )
        previous = months
    return finish(case_ref, outcome)


def finish(case_ref: str, outcome: str) -> str:
    """Close the case with its outcome (e.g. "converted-guardian", "discharged-at-deadline")."""
    enter_stage(case_ref, "closure")
    close_case(case_ref, outcome)
    publish_timeline(case_ref, "closed")
    return outcome
