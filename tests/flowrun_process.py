"""Flow-run executions for tests, forked from the stack's own warm process: kill -9 them at will.

A test that kills a case at every one of its steps executes it a hundred times. ``Executor`` drives
``yeongye.forkserver`` (what the stack's worker executes with) one execution at a time: each still
runs in a process of its own that can die by SIGKILL (``tasks.failpoints``) without touching the
test or the server.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import TracebackType

from yeongye import forkserver

ROOT = Path(__file__).resolve().parents[1]


class Executor:
    """``execute(run_id)`` returns 0 (suspended or ended), 1 (raised) or -9 (killed)."""

    def __init__(self, flow_name: str, env: dict[str, str]) -> None:
        self._flow_name = flow_name
        self._process = subprocess.Popen(
            [sys.executable, "-m", "yeongye.forkserver"],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._readline() == forkserver.READY

    def _readline(self) -> str:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        assert line, f"fork server exited with {self._process.wait()}"
        return line.strip()

    def execute(self, run_id: str) -> int:
        assert self._process.stdin is not None
        self._process.stdin.write(f"{run_id} {self._flow_name}\n")
        self._process.stdin.flush()
        word, started_run, pid = self._readline().split()
        assert (word, started_run) == ("started", run_id)
        word, exited_pid, code = self._readline().split()
        assert (word, exited_pid) == ("exited", pid)
        return int(code)

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)
