"""One hoarding case killed (SIGKILL) after every step it takes, from intake to closure.

The case's flow run executes in a process of its own (forked from the warm fork server,
``tests.flowrun_process``), which kills itself right after each task that did work
(``tasks.failpoints``, ``every-new-task``): each execution gets exactly one step further, then
dies as an out-of-memory kill would leave it. The test then does what the worker and the stack
do: report the run Crashed, let the recovery run it again once the crash settled. People answer
each wait as usual. The case must reach closure with exactly one email per (step, recipient),
nothing left in the outbox and no task failed.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections import Counter
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import State, TaskRun
from prefect.settings import PREFECT_API_URL
from prefect.states import Crashed

from registry import outbox
from registry.calendar import FixedClock, SystemClock
from registry.db import Database
from tasks.failpoints import ENV, EVERY_NEW_TASK
from tasks.mailer import Sender
from tests.driving import Script, coordinator_of, deploy_hoarding, read_case, read_run
from tests.flowrun_process import Executor
from tests.test_hoarding_case import EXPECTED_AGENCY_HANDOFFS, _emails_by_step, _task_states
from yeongye import recovery, steering
from yeongye.mailcapture import MailCapture
from yeongye.settings import get_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def _drive_with_kills(executor: Executor, script: Script, run_id: str) -> tuple[State[object], int, int]:
    """Execute the run until it ends: after a kill do what the stack does, after a wait answer it.

    The stack's relay sends what a killed process left in the outbox; its recovery runs the flow
    again. Both are called here directly, with the clock moved past their waiting times.
    """
    kills = 0
    for executions in range(1, 600):
        if executor.execute(run_id) == -9:
            kills += 1
            # What the worker reports, then what the stack's recovery does once the crash settled.
            with get_client(sync_client=True) as client:
                client.set_flow_run_state(UUID(run_id), Crashed(message="process killed"))
            # The clock stands a while later: the crash settled and any claim the process held is stale.
            later = FixedClock(
                SystemClock().now() + max(recovery.CRASH_SETTLE, outbox.STALE_CLAIM) + dt.timedelta(seconds=1)
            )
            Sender(script.db, get_settings(), later).deliver_due()  # the relay
            repaired = recovery.examine(script.db, repair=True, clock=later)
            assert [(f.case_ref, f.problem, f.action) for f in repaired] == [(script.case_ref, "crashed", "repaired")]
            continue
        state = read_run(run_id).state
        assert state is not None
        if state.is_final():
            return state, kills, executions
        script.answer(steering.current_wait(script.db, script.case_ref))
    raise AssertionError("the case did not finish")


def _tasks_of_last_execution(flow_run_id: str) -> set[str]:
    """The task-run names of the run's last execution, which replays every task of the case.

    (An execution that was killed may leave its newest task run under a placeholder name.)
    """
    runs: list[TaskRun] = []
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])), limit=200, offset=len(runs)
            )
            runs.extend(page)
            if len(page) < 200:
                break
    last = max(run.flow_run_run_count for run in runs)
    return {run.name for run in runs if run.flow_run_run_count == last}


def test_a_case_killed_after_every_step_still_closes_and_sends_each_email_once(
    prefect_server: None, registry: Database, mail: MailCapture, results_dir: Path, tmp_path: Path
) -> None:
    deploy_hoarding()
    launched = steering.launch(
        registry, intervention="hoarding", complex_code="D", resident_ref="R-D-001", by=coordinator_of(registry, "D")
    )
    plans = tmp_path / "failpoints"
    plans.mkdir()
    (plans / launched.case_ref).write_text(EVERY_NEW_TASK)
    env = {
        **os.environ,
        ENV: str(plans),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(results_dir),
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
    }
    script = Script(registry, launched.case_ref)
    started = time.monotonic()
    with Executor("hoarding", env) as executor:
        state, kills, executions = _drive_with_kills(executor, script, launched.flow_run_id)
    print(f"{kills} kills in {executions} executions, {time.monotonic() - started:.0f} s")

    assert state.is_completed(), state
    case = read_case(registry, launched.case_ref)
    assert (case.status, case.outcome) == ("closed", "remediated")
    counts = _emails_by_step(mail.mail_dir)
    for step, recipients in EXPECTED_AGENCY_HANDOFFS.items():
        for to in recipients:
            assert counts[(step, to)] == 1, (step, to)
    assert max(counts.values()) == 1, Counter(v for v in counts.values())
    assert recovery.examine(registry, repair=False) == []
    with registry.transaction() as session:
        assert outbox.listing(session) == []
    tasks = _task_states(launched.flow_run_id)
    assert tasks["Failed"] == 0
    # Every task of the case was killed right after it first did its work, and only then.
    killed = (plans / f"{launched.case_ref}.killed").read_text().splitlines()
    assert len(killed) == kills > 50
    assert [name for name, n in Counter(killed).items() if n > 1] == []
    # Prefect records task runs from events, after the flow run ends: give the tail time to land.
    deadline = time.monotonic() + 60
    while (replayed := _tasks_of_last_execution(launched.flow_run_id)) != set(killed) and time.monotonic() < deadline:
        time.sleep(1)
    assert set(killed) == replayed
