"""Starting a follow-on intervention from inside a flow: the same resident, another intervention's case.

The follow-on case is opened and its flow run created exactly as `yeongye launch` does
(``yeongye.steering.launch``). Only case references travel through Prefect: the resident and
the complex are read from the registry here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import cases
from registry.models import Case
from tasks import runtime
from tasks.log import logger
from tasks.retry import handoff_task

LAUNCHED = "launched"  # a new case was opened and its flow run started
ALREADY_OPEN = "already-open"  # the resident already has an open case of this intervention: nothing to start


@dataclass(frozen=True)
class FollowOn:
    status: str
    case_ref: str  # the follow-on case, new or already open


@handoff_task(name="launch-follow-on", task_run_name="launch-{intervention}")
def launch_follow_on(case_ref: str, intervention: str) -> FollowOn:
    """Open a case of ``intervention`` for this case's resident and start its flow run.

    An open case of that intervention for the resident is not an error: it is recorded and
    returned. Each outcome is written to the audit trail of this case.
    """
    # Imported here: the steering module is an entry point (it talks to the Prefect API).
    from yeongye import steering

    with runtime.transaction() as session:
        case = cases.find_case(session, case_ref)
        complex_code, resident_ref = case.complex_code, case.resident_ref
        existing = _open_case(session, resident_ref, intervention)
        if existing:
            result = FollowOn(ALREADY_OPEN, existing)
            _record(session, case, intervention, result)
            return result
    try:
        launched = steering.launch(
            runtime.database(),
            intervention=intervention,
            complex_code=complex_code,
            resident_ref=resident_ref,
            by=f"case:{case_ref}",  # the follow-on is opened by this case's flow, not by a person
        )
        result = FollowOn(LAUNCHED, launched.case_ref)
    except steering.RunNotStarted as pending:
        # The case is open and the recovery creates its run: the follow-on is launched all the same.
        result = FollowOn(LAUNCHED, pending.case_ref)
    except cases.CaseError:
        # A launch for the same resident won the race: the open case it made is the follow-on.
        with runtime.transaction() as session:
            existing = _open_case(session, resident_ref, intervention)
        if existing is None:
            raise
        result = FollowOn(ALREADY_OPEN, existing)
    with runtime.transaction() as session:
        _record(session, cases.find_case(session, case_ref), intervention, result)
    return result


def _open_case(session: Session, resident_ref: str | None, intervention: str) -> str | None:
    return session.scalar(
        select(Case.ref).where(
            Case.resident_ref == resident_ref, Case.intervention == intervention, Case.status == "open"
        )
    )


def _record(session: Session, case: Case, intervention: str, result: FollowOn) -> None:
    cases.audit(
        session,
        case,
        "flow",
        "follow-on",
        intervention=intervention,
        status=result.status,
        follow_on=result.case_ref,
    )
    logger(case.ref, "follow-on").info("follow-on", intervention=intervention, status=result.status)
