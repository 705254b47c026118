"""One hoarding case killed (SIGKILL) after every step it takes, from intake to closure.

The case's flow run executes in a process of its own (``tests.flowrun_process``), which kills
itself right after each task that did work (``tasks.failpoints``, ``every-new-task``): each
execution gets exactly one step further, then dies as an out-of-memory kill would leave it. The
test then does what the worker and the stack do: report the run Crashed, let the recovery run it
again once the crash settled. People answer each wait as usual. The case must reach closure with
exactly one email per (step, recipient), nothing left in the outbox and no task failed.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL
from prefect.states import Crashed

from registry.calendar import FixedClock, SystemClock
from registry.db import Database
from tasks.failpoints import ENV, EVERY_NEW_TASK
from tests.driving import Script, deploy_hoarding, read_case, read_run
from tests.test_hoarding_case import EXPECTED_AGENCY_HANDOFFS, _emails_by_step, _task_states
from yeongye import recovery, steering
from yeongye.mailcapture import MailCapture

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def _execute(run_id: str, env: dict[str, str]) -> int:
    """One execution of the flow run in its own process; its exit code (-9 when it killed itself)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.flowrun_process", run_id, "flows.hoarding.flow:hoarding"],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        timeout=300,
    )
    assert done.returncode in (0, -9), done.stderr.decode(errors="replace")[-3000:]
    return done.returncode


def test_a_case_killed_after_every_step_still_closes_and_sends_each_email_once(
    prefect_server: None, registry: Database, mail: MailCapture, results_dir: Path, tmp_path: Path
) -> None:
    deploy_hoarding()
    launched = steering.launch(registry, intervention="hoarding", complex_code="D", resident_ref="R-D-001")
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
    kills = 0
    for _ in range(600):
        if _execute(launched.flow_run_id, env) == -9:
            kills += 1
            # What the worker reports, then what the stack's recovery does once the crash settled.
            with get_client(sync_client=True) as client:
                client.set_flow_run_state(UUID(launched.flow_run_id), Crashed(message="process killed"))
            settled = FixedClock(SystemClock().now() + recovery.CRASH_SETTLE + dt.timedelta(seconds=1))
            repaired = recovery.examine(registry, repair=True, clock=settled)
            assert [(f.case_ref, f.problem, f.action) for f in repaired] == [(launched.case_ref, "crashed", "repaired")]
            continue
        state = read_run(launched.flow_run_id).state
        assert state is not None
        if state.is_final():
            break
        script.answer(steering.current_wait(registry, launched.case_ref))
    else:
        raise AssertionError("the case did not finish")

    assert state.is_completed(), state
    case = read_case(registry, launched.case_ref)
    assert (case.status, case.outcome) == ("closed", "remediated")
    counts = _emails_by_step(mail.mail_dir)
    for step, recipients in EXPECTED_AGENCY_HANDOFFS.items():
        for to in recipients:
            assert counts[(step, to)] == 1, (step, to)
    assert max(counts.values()) == 1, Counter(v for v in counts.values())
    assert recovery.examine(registry, repair=False) == []
    tasks = _task_states(launched.flow_run_id)
    assert tasks["Failed"] == 0
    # Every step that did work was followed by a kill (two steps finishing together share one).
    assert kills >= tasks["Completed"] // 2 and kills > 50, (kills, tasks)
