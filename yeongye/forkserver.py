"""Flow-run executions forked from one warm process, in which Prefect and every flow are imported once.

Prefect's process worker starts fresh interpreters for each execution of a flow run (its workspace
supervisor, then ``python -m prefect.engine``), each importing Prefect and the flow: seconds of CPU
for every step of every case. This server imports them once, then forks a child per execution.
Each execution is still a process of its own, so a kill -9 or an out-of-memory kill takes one
execution, never the worker or another case; it only starts warm.

The server holds no thread, client or connection when it forks (checked at start), so each child
starts clean and opens its own. Every deployment of the catalogue runs with the same environment
(``yeongye.stack.worker_env``), which is this server's, so a child needs nothing else.

Protocol, one line each way (the worker's side is ``yeongye.worker.ForkServer``)::

    → <flow run id> <flow name>
    ← started <flow run id> <pid>
    ← exited <pid> <exit code>        (when that child ends: 0 suspended or finished, 1 raised, -9 killed)
"""

from __future__ import annotations

import importlib
import os
import selectors
import signal
import sys
import threading
import traceback
from typing import TextIO
from uuid import UUID

from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.engine import handle_engine_signals
from prefect.flow_engine import run_flow

from registry.interventions import CATALOGUE

READY = "ready"


def load_flows() -> dict[str, Flow[..., object]]:
    """Every flow of the catalogue, imported, by name."""
    flows = {}
    for entry in CATALOGUE:
        flow = getattr(importlib.import_module(entry.module), entry.function)
        assert isinstance(flow, Flow)
        flows[entry.name] = flow
    return flows


def execute(flow: Flow[..., object], flow_run_id: str) -> int:
    """One execution of a flow run until it suspends or ends, as ``python -m prefect.engine`` runs it."""
    try:
        with handle_engine_signals(UUID(flow_run_id)):
            with get_client(sync_client=True) as client:
                flow_run = client.read_flow_run(UUID(flow_run_id))
            run_flow(flow, flow_run=flow_run, parameters=flow_run.parameters)
    except SystemExit as end:  # handle_engine_signals ends a paused or aborted run with exit(0)
        return end.code if isinstance(end.code, int) else 1
    except BaseException:  # noqa: BLE001 - the exit status says it; the traceback goes to the worker's log
        traceback.print_exc()
        return 1
    return 0


def _child(flow: Flow[..., object] | None, flow_run_id: str, server_fds: tuple[int, ...]) -> None:
    """In the forked child: forget the server's wiring, execute, and leave without its cleanup.

    A flow the catalogue does not name fails this execution only (exit 1), never the server.
    """
    code = 1
    try:
        # A session of its own, as Prefect starts flow-run processes: a signal to the worker's group
        # (a stop, a restart) must not reach an execution that is just suspending, which would then
        # be recorded Crashed instead of Suspended. The stack stops executions itself (processes.py).
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for fd in server_fds:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        if flow is None:
            print(f"flow run {flow_run_id}: no such flow in the catalogue", file=sys.stderr)
        else:
            code = execute(flow, flow_run_id)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """Read requests on stdin until it closes; fork a child for each; report starts and exits on stdout.

    Exits are reported when the child ends, whatever order requests came in: SIGCHLD wakes the loop.
    SIGTERM and SIGINT are ignored: a signal to the worker's process group (a stop) must leave the
    server reporting the exits of executions still finishing; it ends when the worker closes its
    stdin (or dies). Children still running then go on and report their own state to Prefect.
    """
    flows = load_flows()
    assert threading.active_count() == 1, "a thread started at import would not survive fork"
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what the flows print goes to the log, never into the protocol
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd sees the signal
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    print(READY, file=out)
    pending = b""
    open_ = True
    while open_:
        for key, _ in selector.select():
            if key.fd == wake_read:
                while _drained(wake_read):
                    pass
                continue
            data = os.read(0, 65536)
            if not data:
                open_ = False
                break
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                flow_run_id, name = line.decode().split()
                pid = os.fork()
                if pid == 0:
                    _child(flows.get(name), flow_run_id, (wake_read, wake_write, out.fileno()))
                print(f"started {flow_run_id} {pid}", file=out)
        _report_exits(out)


def _drained(fd: int) -> bool:
    try:
        return bool(os.read(fd, 512))
    except BlockingIOError:
        return False


def _report_exits(out: TextIO) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        print(f"exited {pid} {os.waitstatus_to_exitcode(status)}", file=out)


if __name__ == "__main__":
    serve()
