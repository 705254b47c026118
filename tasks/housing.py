"""The step of housing support that reads the assessed needs: it runs here, so the flow sees codes only.

The coordinator records the needs in the registry (``registry.housing``); this task returns their
codes, and ``handoffs`` turns them into the handoffs of ``registry.housing.NEEDS``.
"""

from __future__ import annotations

from registry import cases, housing
from tasks import runtime
from tasks.handoffs import Need
from tasks.log import logger
from tasks.retry import handoff_task


@handoff_task(name="housing-needs", task_run_name="housing-needs-{round_}-{attempt}")
def assessed_needs(case_ref: str, round_: int, attempt: int) -> tuple[str, ...]:
    """The needs still to be met, as codes, in ``registry.housing.NEEDS`` order (empty if none is recorded).

    ``round_`` and ``attempt`` tell apart the readings of one run (each after the coordinator confirmed).
    """
    with runtime.transaction() as session:
        case = cases.find_case(session, case_ref)
        needs = housing.needs_of(session, case)
        cases.audit(session, case, "flow", "housing-needs", round=round_, needs=list(needs))
    logger(case_ref, "housing-needs").info("housing-needs", round=round_, needs=len(needs))
    return needs


def handoffs(needs: tuple[str, ...]) -> list[list[Need]]:
    """One handoff per need, in waves of parallel handoffs (``registry.housing.handoff_waves``)."""
    return [[Need(s.agency_type, s.service) for s in wave] for wave in housing.handoff_waves(needs)]
