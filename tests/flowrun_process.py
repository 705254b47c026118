"""Flow-run processes for tests, forked from one warm parent: kill -9 them as often as you like.

A worker starts a fresh interpreter per execution, which costs seconds of imports; a test that
kills a case at every one of its steps executes it a hundred times. So ``Executor`` starts one
server process (``python -m tests.flowrun_process <module>:<flow>``) that imports Prefect and the
flow once, then forks a child per request: each execution still runs in a process of its own that
can die by SIGKILL (``tasks.failpoints``) without touching the test or the server. The server
holds no client, thread or connection when it forks, so each child starts clean.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from uuid import UUID

from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.exceptions import Pause
from prefect.flow_engine import run_flow

ROOT = Path(__file__).resolve().parents[1]


def _execute(flow: Flow[..., object], run_id: str) -> None:
    """One execution of a flow run, until it suspends or ends (what a worker's child does)."""
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(UUID(run_id))
    try:
        run_flow(flow, flow_run=flow_run, parameters=flow_run.parameters)
    except Pause:
        pass


def serve(target: str) -> None:
    """Read flow-run ids from stdin; execute each in a forked child; answer with its exit status."""
    module, name = target.split(":")
    flow = getattr(importlib.import_module(module), name)
    assert isinstance(flow, Flow)
    assert threading.active_count() == 1, "a thread started at import would not survive fork"
    print("ready", flush=True)
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _execute(flow, line.strip())
            except BaseException:  # noqa: BLE001 - reported through the exit status, traceback on stderr
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)


class Executor:
    """The test's side: ``execute(run_id)`` returns 0 (suspended or ended), 1 (raised) or -9 (killed)."""

    def __init__(self, target: str, env: dict[str, str]) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.flowrun_process", target],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._readline() == "ready"

    def _readline(self) -> str:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        assert line, f"flow-run server exited with {self._process.wait()}"
        return line.strip()

    def execute(self, run_id: str) -> int:
        assert self._process.stdin is not None
        self._process.stdin.write(run_id + "\n")
        self._process.stdin.flush()
        return int(self._readline())

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)


if __name__ == "__main__":
    serve(sys.argv[1])
