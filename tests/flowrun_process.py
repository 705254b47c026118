"""A flow-run process for tests: runs one flow run until it suspends or ends, as a worker's child does.

``python -m tests.flowrun_process <flow run id> <module>:<flow>``. The test that starts it can kill
it (or have it kill itself, ``tasks.failpoints``) at any task boundary, and then do what the worker
and the stack's recovery do about a process that died.
"""

from __future__ import annotations

import importlib
import sys
from uuid import UUID

from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.exceptions import Pause
from prefect.flow_engine import run_flow


def main(run_id: str, target: str) -> None:
    module, name = target.split(":")
    flow = getattr(importlib.import_module(module), name)
    assert isinstance(flow, Flow)
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(UUID(run_id))
    try:
        run_flow(flow, flow_run=flow_run, parameters=flow_run.parameters)
    except Pause:
        pass


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
