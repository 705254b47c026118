"""Finding and mending cases whose process is gone: the check behind `yeongye doctor` and the stack.

Every open case should have a flow run that is waiting (suspended), scheduled or running. A case
can lose it: the launch crashed between recording the case and creating its run, the run's
process was killed (Prefect marks it Crashed), a step failed for good, or the run was deleted.
Flows are replay-safe (finished steps replay from their persisted results, every email has its
idempotency key), so the repair is simply to run the case's flow again: create the missing run
with the case reference as idempotency key, or put a crashed or failed run back to Scheduled.
What a person must decide (a cancelled run, a run that ended while its case is open, a run that
keeps failing, a deleted run of a case already under way, whose answers were kept in that run)
is listed, never guessed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Scheduled
from sqlalchemy import select

from registry import cases
from registry.calendar import Clock, SystemClock
from registry.db import Database
from registry.models import Case, Referral
from yeongye import steering

log = logging.getLogger(__name__)

# A run re-run this many times and still failing needs a person, not another automatic try.
AUTOMATIC_RERUNS = 3
_BATCH = 200
LAUNCH_GRACE = dt.timedelta(minutes=1)
CRASH_SETTLE = dt.timedelta(seconds=45)
STUCK_PENDING = dt.timedelta(seconds=90)

PROBLEMS = {
    "no-run": "flow run 없음 (no flow run)",
    "run-missing": "flow run 이 Prefect 에 없음 (flow run not found)",
    "crashed": "flow run 비정상 종료 (crashed)",
    "stuck-pending": "워커가 실행을 맡은 채 사라짐 (taken by a worker that died)",
    "failed": "flow run 실패 (failed)",
    "cancelled": "flow run 취소됨: 사례를 종결하거나 다시 시작할지 결정 필요 (cancelled: a person decides)",
    "ended-open": "flow run 은 끝났는데 사례가 열려 있음 (run ended, case still open)",
}
ACTIONS = {
    "repaired": "복구함 (repaired)",
    "repairable": "복구 가능 (repairable)",
    "person": "사람의 판단 필요 (needs a person)",
}


@dataclass(frozen=True)
class Finding:
    case_ref: str
    problem: str
    action: str
    flow_run_id: str | None = None


def examine(db: Database, *, repair: bool, automatic: bool = False, clock: Clock | None = None) -> list[Finding]:
    """Check every open case's flow run; with ``repair``, mend what can be mended.

    A closed case's run is checked too when it crashed, failed or hangs: the process can die
    after the step that closed the case and before the run ended (the timeline is still to be
    published); running it again replays to the end.

    ``automatic`` is the stack's own loop: it re-runs a failed run at most ``AUTOMATIC_RERUNS``
    times (a step that fails for good would otherwise fail again every minute); the command
    re-runs whatever a person asks it to.
    """
    now = (clock or SystemClock()).now()
    with db.transaction() as session:
        # A case launched a moment ago gets its run from the launch itself; leave it alone a while.
        settled = now - LAUNCH_GRACE
        open_cases = list(
            session.execute(
                select(Case.ref, Case.flow_run_id).where(
                    Case.status == "open", Case.flow_run_id.is_not(None) | (Case.opened_at < settled)
                )
            )
        )
        started = set(
            session.scalars(
                select(Case.ref).join(Referral, Referral.case_id == Case.id).where(Case.status == "open").distinct()
            )
        )
    findings: list[Finding] = []
    with get_client(sync_client=True) as client:
        runs = _read_runs(client, [run for _, run in open_cases if run])
        interrupted = _read_interrupted_runs(client)
        with db.transaction() as session:
            closed_cases = list(
                session.execute(
                    select(Case.ref, Case.flow_run_id).where(
                        Case.status != "open", Case.flow_run_id.in_(list(interrupted))
                    )
                )
            )
        runs.update(interrupted)
        for case_ref, run_id in [*open_cases, *closed_cases]:
            run = runs.get(run_id) if run_id else None
            finding = _check(case_ref, run_id, run, automatic, case_ref in started, now)
            if finding is None:
                continue
            if repair and finding.action == "repairable":
                try:
                    _repair(db, client, finding)
                except Exception:  # noqa: BLE001 - one case that cannot be mended now must not stop the others
                    log.exception("사례 복구 실패, 다음에 다시 시도 (repair failed, retried later): %s", case_ref)
                else:
                    finding = Finding(case_ref, finding.problem, "repaired", finding.flow_run_id)
            findings.append(finding)
    return findings


def _read_runs(client: SyncPrefectClient, run_ids: list[str]) -> dict[str, FlowRun]:
    found: dict[str, FlowRun] = {}
    for batch in _batches(run_ids, _BATCH):
        flow_runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run) for run in batch])), limit=len(batch)
        )
        found.update({str(run.id): run for run in flow_runs})
    return found


def _read_interrupted_runs(client: SyncPrefectClient) -> dict[str, FlowRun]:
    """Every run that crashed, failed or waits in Pending, whatever its case."""
    interrupted = FlowRunFilterStateType(any_=[StateType.CRASHED, StateType.FAILED, StateType.PENDING])
    found: dict[str, FlowRun] = {}
    while True:
        page = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=interrupted)), limit=_BATCH, offset=len(found)
        )
        found.update({str(run.id): run for run in page})
        if len(page) < _BATCH:
            return found


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check(
    case_ref: str, run_id: str | None, run: FlowRun | None, automatic: bool, started: bool, now: dt.datetime
) -> Finding | None:
    if run_id is None:
        return Finding(case_ref, "no-run", "repairable")
    if run is None:
        # A new run replays nothing: safe only while the case has not handed anything off yet.
        return Finding(case_ref, "run-missing", "person" if started else "repairable", run_id)
    state = run.state.type if run.state else None
    if state == StateType.CRASHED:
        # The worker reports a crash twice, the second time up to a minute late: let both land
        # before running the flow again, or the late one would mark the new execution crashed.
        settled = run.state is not None and run.state.timestamp < now - CRASH_SETTLE
        return Finding(case_ref, "crashed", "repairable", run_id) if settled else None
    if state == StateType.PENDING and run.state is not None and run.state.timestamp < now - STUCK_PENDING:
        # The worker took the run and died before starting its process: no worker will take it again.
        return Finding(case_ref, "stuck-pending", "repairable", run_id)
    if state == StateType.FAILED:
        exhausted = automatic and run.run_count > AUTOMATIC_RERUNS
        return Finding(case_ref, "failed", "person" if exhausted else "repairable", run_id)
    if state == StateType.CANCELLED:
        return Finding(case_ref, "cancelled", "person", run_id)
    if state == StateType.COMPLETED:
        return Finding(case_ref, "ended-open", "person", run_id)
    return None


def _repair(db: Database, client: SyncPrefectClient, finding: Finding) -> None:
    if finding.problem == "run-missing":
        with db.transaction() as session:
            cases.find_case(session, finding.case_ref).flow_run_id = None
    if finding.problem in ("no-run", "run-missing"):
        steering.start_run(db, client, finding.case_ref)
        return
    # Crashed, failed or stuck: run the flow again; finished steps replay, nothing is sent twice.
    assert finding.flow_run_id is not None
    client.set_flow_run_state(UUID(finding.flow_run_id), Scheduled(name="Recovering"), force=True)
