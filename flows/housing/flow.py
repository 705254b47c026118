"""Housing support (주거지원), as a coordinator draws it on the whiteboard.

written consent → counselling: the coordinator records the housing needs found
  (`yeongye housing needs`, codes in the registry) and confirms with `yeongye approve` →
  one handoff per need, in parallel, each due in its agency type's business days:
      arrears of rent or management fee     → partner donors (arrears relief)
      emergency housing or fuel cost        → 행정복지센터 (긴급지원)
      housing cost                          → 행정복지센터 (주거급여)
      moving cost, 주거상향 out of 반지하·고시원 → 주거안심종합센터
      a move between public rentals, home modification for limited mobility, repairs → LH
  → a follow-up visit a month later: settled → closure
                                     not settled → the coordinator records what remains,
                                         another round of handoffs and a visit, then closure either way
  → closure approved by the supervisor

A confirmation with no need recorded asks again; a rejection (nothing to assess, the resident would
not say) closes the case. Rules and what the reference leaves open: ``registry.housing``. Prefect
sees the needs' codes and the agencies' answers, never an amount or a reason.
"""

from __future__ import annotations

from prefect import flow

from tasks.case import check_case
from tasks.gates import CONSENT_REFUSED, close_with_approval, intake_with_consent
from tasks.handoffs import Need, ask, await_outcome, hand_off
from tasks.housing import assessed_needs, handoffs
from tasks.referrals import due_in_months

PURPOSE = "housing-support"
# Every body a handoff may go to learns who the resident is, so each is named in the consent;
# the 관리사무소 does the follow-up visit.
CONSENTED_AGENCY_TYPES = ["community-center", "housing-safety", "lh", "private-donor", "management-office"]

# The follow-up visit a month after the handoffs: has the housing need been settled?
CHECK = Need("management-office", "housing-check")
CHECK_MONTHS = 1
SETTLED, NOT_SETTLED = "settled", "not-settled"
CHECK_OUTCOMES = (SETTLED, NOT_SETTLED)
# The first round and one more for what is still unsettled; a need two rounds cannot meet goes back
# to the coordinator's own casework, not round after round of the same handoffs.
ROUNDS = 2

# The case's outcomes besides CONSENT_REFUSED.
HOUSING_SETTLED = "housing-settled"
HOUSING_NOT_SETTLED = "housing-not-settled"
NEEDS_NOT_ASSESSED = "needs-not-assessed"


@flow(name="housing-support", flow_run_name="{case_ref} housing-support 주거지원", persist_result=True)
def housing_support(case_ref: str) -> str:
    """Run one housing support from consent to closure; returns the case's outcome."""
    check_case(case_ref, "housing-support")
    if not intake_with_consent(case_ref, CONSENTED_AGENCY_TYPES, PURPOSE):
        return close_with_approval(case_ref, CONSENT_REFUSED)

    for round_ in range(1, ROUNDS + 1):
        needs = _assessed_needs(case_ref, round_)
        if not needs:
            return close_with_approval(case_ref, NEEDS_NOT_ASSESSED if round_ == 1 else HOUSING_NOT_SETTLED)
        for wave, wave_needs in enumerate(handoffs(needs), start=1):
            hand_off(case_ref, f"housing-{round_}" + (f"-{wave}" if wave > 1 else ""), wave_needs)
        if _settled(case_ref, round_):
            return close_with_approval(case_ref, HOUSING_SETTLED)
    return close_with_approval(case_ref, HOUSING_NOT_SETTLED)


def _assessed_needs(case_ref: str, round_: int) -> tuple[str, ...]:
    """The needs the coordinator recorded and confirmed; empty when they reject (nothing more to do)."""
    attempt = 1
    while ask(case_ref, f"housing-needs-{round_}-{attempt}", "housing-needs", "coordinator"):
        needs = assessed_needs(case_ref, round_, attempt)
        if needs:
            return needs
        attempt += 1  # confirmed before recording any need: asked again
    return ()


def _settled(case_ref: str, round_: int) -> bool:
    """The follow-up visit a month on; a visit nobody made does not count as settled."""
    step = f"housing-check-{round_}"
    visit = await_outcome(
        case_ref, step, CHECK, outcomes=CHECK_OUTCOMES, due=due_in_months(case_ref, step, CHECK_MONTHS)
    )
    return visit.status == "completed" and visit.outcome == SETTLED
