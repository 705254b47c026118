"""The step of a hoarding case that reads the home visit's findings: it runs here, so the flow sees
what they set in motion (``registry.hoarding.consequences``), never the findings themselves."""

from __future__ import annotations

from registry import cases, hoarding
from tasks import runtime
from tasks.log import logger
from tasks.retry import handoff_task


@handoff_task(name="home-visit-findings", task_run_name="home-visit-findings")
def home_visit_consequences(case_ref: str) -> hoarding.Consequences:
    """What the findings the coordinator confirmed set in motion."""
    with runtime.transaction() as session:
        case = cases.find_case(session, case_ref)
        found = hoarding.consequences(hoarding.findings_of(session, case))
        cases.audit(session, case, "flow", hoarding.KIND, **found._asdict())
    logger(case_ref, hoarding.KIND).info("home-visit", admission=found.admission, guardianship=found.guardianship)
    return found
