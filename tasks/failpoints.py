"""Crashing on purpose at a chosen task boundary: how the fault-injection tests kill a flow run.

A test that wants a case's flow-run process to die right after its Nth task completes writes N
into ``$YEONGYE_FAILPOINTS_DIR/<case_ref>`` (or ``every-new-task``, below). Each completed task
of that case counts the number down, across executions (so a boundary reached only after a
resume can be chosen too); at zero the plan is marked fired and the process SIGKILLs itself: no
cleanup, no final state, exactly what an out-of-memory kill or a power cut leaves. Without the
variable (always, outside those tests) a task pays one environment lookup.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext

ENV = "YEONGYE_FAILPOINTS_DIR"
# A plan holding this word kills the process after every task that did work (not a replay from
# its persisted result), in every execution: each run of the case then gets exactly one step
# further before it dies, so a case driven to its end has been killed at each of its steps. Each
# kill is logged, one task-run name per line, in ``<case_ref>.killed``.
EVERY_NEW_TASK = "every-new-task"


def crash_after_planned_task(_task: Any, task_run: Any, state: State[Any]) -> None:
    """Task state hook (on completion): count down this case's plan and die when it runs out."""
    directory = os.environ.get(ENV)
    context = FlowRunContext.get()
    if not directory or context is None or context.flow_run is None:
        return
    plan = Path(directory) / str(context.flow_run.parameters.get("case_ref", ""))
    if not plan.is_file():
        return
    text = plan.read_text()
    if text == EVERY_NEW_TASK:
        if state.name != "Cached":
            # The boundaries, in order, for the test to enumerate (``<case_ref>.killed``).
            with plan.with_suffix(".killed").open("a") as killed:
                killed.write(f"{task_run.name}\n")
            os.kill(os.getpid(), signal.SIGKILL)
        return
    remaining = int(text) - 1
    if remaining > 0:
        plan.write_text(str(remaining))
        return
    plan.rename(plan.with_suffix(".fired"))
    os.kill(os.getpid(), signal.SIGKILL)
