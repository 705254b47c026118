"""Two gates every resident intervention passes: written consent before, the supervisor's approval at the end.

They are built from the verbs in ``tasks.handoffs`` and shared by the flows, so a consent refusal
and a closure look the same in every intervention: the same wait keys, the same steps.
"""

from __future__ import annotations

from tasks.case import close_case, enter_stage, publish_timeline
from tasks.handoffs import ConsentOutcome, Need, ask, follow_up, hand_off, obtain_consent

FOLLOW_UP_VISIT = Need("management-office", "follow-up-visit")
MONITORING_VISIT = Need("management-office", "monitoring-visit")
CONSENT_REFUSED = "consent-refused-monitoring"
# A refusal is followed by one re-approach; a service pressed on someone who said no twice does harm.
VOLUNTARY_CONSENT_ATTEMPTS = 2


def intake_with_consent(case_ref: str, agency_types: list[str], purpose: str) -> bool:
    """Open a voluntary intervention: intake, then written consent with one monitoring re-approach.

    False when the resident refused both times: the caller closes the case with ``CONSENT_REFUSED``
    and the complex keeps in touch through the management office, which learns nothing of the service.
    """
    enter_stage(case_ref, "intake")
    publish_timeline(case_ref, "intake")
    consent = consent_gate(
        case_ref, agency_types, purpose, re_approach=MONITORING_VISIT, attempts=VOLUNTARY_CONSENT_ATTEMPTS
    )
    return consent is not None


def consent_gate(
    case_ref: str, agency_types: list[str], purpose: str, *, re_approach: Need, attempts: int
) -> ConsentOutcome | None:
    """Ask for written consent up to ``attempts`` times, with a re-approach visit after each refusal.

    Returns the consent, or None when the resident refused every time: the caller then closes the
    case without the service. There is no override: a refusal never leads on to the service. The
    visiting agency is not covered by any consent yet, so its email names neither the resident
    nor a health service.
    """
    attempt = 1
    consent = obtain_consent(case_ref, attempt, agency_types, purpose)
    while not consent.given:
        if attempt == attempts:
            return None
        hand_off(case_ref, f"re-approach-{attempt}", [re_approach])
        attempt += 1
        consent = obtain_consent(case_ref, attempt, agency_types, purpose)
    return consent


def close_with_approval(
    case_ref: str,
    outcome: str,
    *,
    extra: Need = FOLLOW_UP_VISIT,
    extra_months: int = 1,
    extra_step: str = "follow-up-extra",
) -> str:
    """A supervisor approves closing; until then, the case gets one more piece of work first.

    For a resident that is a follow-up visit a month later; a programme asks its partner again
    (e.g. to complete the report). Returns the outcome the case closed with.
    """
    enter_stage(case_ref, "closure")
    extra_round = 0
    while not ask(case_ref, f"closure-{extra_round + 1}", "closure"):
        extra_round += 1
        follow_up(case_ref, f"{extra_step}-{extra_round}", extra, months=extra_months)
    close_case(case_ref, outcome)
    publish_timeline(case_ref, "closed")
    return outcome
