"""The stack's Prefect process worker: Prefect's own, executing warm, minus a crash on quickly resumed runs.

Warm: each execution of a flow run is a child forked from ``yeongye.forkserver``, which imported
Prefect and every flow once, instead of the two fresh interpreters Prefect's process worker starts
per execution. It is still one process per execution (a kill -9 takes only that execution). With
``--executor process`` the worker executes as Prefect's does, for comparison (``bench/``).

Why not ``prefect worker start``: a case answered several times within seconds resumes its
suspended flow run while the worker still holds the concurrency slot of the run's previous
execution (the slot is released only after the worker has reaped that process). Prefect's
worker then asks its limiter for a second slot for the same flow run id, anyio raises
``RuntimeError: this borrower is already holding one of this CapacityLimiter's tokens``, and the
whole worker dies (Prefect issues #10632 and #16806). ``YeongyeWorker`` leaves such a run for a
later poll, by which time the slot is free; everything else is Prefect's ``ProcessWorker``.

Run as ``python -m yeongye.worker --pool yeongye --limit 8 --name yeongye-local [--executor fork|process]``; the Prefect
settings (API URL, query seconds, ...) come from the environment, as for ``prefect worker start``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import warnings
from typing import TYPE_CHECKING, Any
from uuid import UUID

import anyio.abc
import psutil
from prefect.utilities.processutils import setup_signal_handlers_worker
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker, ProcessWorkerResult

from yeongye import forkserver

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun
    from prefect.client.schemas.responses import WorkerFlowRunResponse

EXECUTORS = ("fork", "process")


class ForkServer:
    """The worker's side of ``yeongye.forkserver``: start it, ask it to execute, learn each exit.

    If the server dies the worker cannot execute anything: it stops itself (SIGTERM, Prefect's
    graceful worker stop), and the stack's supervisor restarts the worker, which starts a new
    server. Executions already forked go on and report their own states to Prefect; one that is
    killed meanwhile is left Running, which the stack's recovery treats as stuck.
    """

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._started: dict[str, asyncio.Future[int]] = {}
        self._exited: dict[int, asyncio.Future[int]] = {}
        self._early: dict[int, int] = {}  # exits read before their start was claimed
        self._lock = asyncio.Lock()
        self._stopping = False

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "yeongye.forkserver", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert self._process.stdout is not None
        ready = (await self._process.stdout.readline()).decode().strip()
        if ready != forkserver.READY:
            raise RuntimeError(f"fork server did not start (exit {await self._process.wait()})")
        asyncio.get_running_loop().create_task(self._read())

    async def execute(self, flow_run_id: str, flow_name: str) -> tuple[int, asyncio.Future[int]]:
        """Fork an execution; returns its pid and a future of its exit code."""
        assert self._process is not None and self._process.stdin is not None
        loop = asyncio.get_running_loop()
        async with self._lock:  # one request at a time: a start line answers the request before it
            started = self._started[flow_run_id] = loop.create_future()
            self._process.stdin.write(f"{flow_run_id} {flow_name}\n".encode())
            await self._process.stdin.drain()
            pid = await started
        exited: asyncio.Future[int] = loop.create_future()
        if pid in self._early:  # it ended before this line ran
            exited.set_result(self._early.pop(pid))
        else:
            self._exited[pid] = exited
        return pid, exited

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for raw in self._process.stdout:
            word, first, second = raw.decode().split()
            if word == "started":
                self._started.pop(first).set_result(int(second))
            else:
                pid, code = int(first), int(second)
                future = self._exited.pop(pid, None)
                if future is None:
                    self._early[pid] = code
                else:
                    future.set_result(code)
        for future in self._started.values():
            future.set_exception(RuntimeError("fork server exited"))
        if not self._stopping:
            print("fork server exited: stopping the worker for the stack to restart it", flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
        # Executions already forked go on without the server and report their own states: the
        # worker waits for them as it waits for its flow runs on a stop, and takes them as ended.
        while self._exited:
            for pid, future in list(self._exited.items()):
                if not psutil.pid_exists(pid):
                    future.set_result(0)
                    del self._exited[pid]
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        self._stopping = True
        if self._process is not None and self._process.stdin is not None:
            self._process.stdin.close()
            await self._process.wait()


with warnings.catch_warnings():
    # Prefect's type registry warns that this class takes over the "process" key from
    # ProcessWorker; that is the point, and only in the process that imports this module.
    warnings.filterwarnings("ignore", message=".*matches existing registered type.*")

    class YeongyeWorker(ProcessWorker):
        """A ``ProcessWorker`` that never submits a flow run whose previous execution still holds a slot."""

        type = "process"

        def __init__(self, *args: Any, forks: ForkServer | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._forks = forks
            self._flow_names: dict[UUID, str] = {}

        async def run(
            self,
            flow_run: FlowRun,
            configuration: ProcessJobConfiguration,
            task_status: anyio.abc.TaskStatus[int] | None = None,
        ) -> ProcessWorkerResult:
            """Execute in a child of the fork server; without one, as Prefect's process worker does."""
            if self._forks is None:
                return await super().run(flow_run, configuration, task_status)
            if flow_run.flow_id not in self._flow_names:
                self._flow_names[flow_run.flow_id] = (await self.client.read_flow(flow_run.flow_id)).name
            pid, exited = await self._forks.execute(str(flow_run.id), self._flow_names[flow_run.flow_id])
            self._logger.info("flow run %s: execution %s forked as pid %s", flow_run.id, flow_run.run_count, pid)
            if task_status is not None:
                task_status.started(pid)
            return ProcessWorkerResult(status_code=await exited, identifier=str(pid))

        async def _submit_scheduled_flow_runs(self, flow_run_response: list[WorkerFlowRunResponse]) -> list[FlowRun]:
            holding = set(self._limiter.statistics().borrowers) if self._limiter else set()
            ready = []
            for entry in flow_run_response:
                if entry.flow_run.id in holding:
                    self._logger.info(
                        "이전 실행이 아직 슬롯을 쓰고 있어 다음 조회 때 제출합니다 "
                        "(flow run %s still holds a slot from its previous execution; submitting it later)",
                        entry.flow_run.id,
                    )
                else:
                    ready.append(entry)
            return await super()._submit_scheduled_flow_runs(ready)

        async def _propose_crashed_state(
            self, flow_run: FlowRun, message: str, client: PrefectClient | None = None
        ) -> None:
            """Report a crash only over the execution that crashed, never over the next one.

            When a flow-run process dies, the runner inside this worker reports the run Crashed at
            once; the worker itself reports it again when it has finished with the process, up to
            a minute later. By then the stack's recovery may have scheduled the run again, and the
            late report would mark the new execution Crashed. So: only a run still Pending or
            Running (its process died without anyone reporting it) is reported.
            """
            current = await (client or self.client).read_flow_run(flow_run.id)
            if current.state is None or current.state.is_running() or current.state.is_pending():
                await super()._propose_crashed_state(flow_run, message, client)


def _print(*args: object, **_style: object) -> None:
    # Prefect's printers take rich styles; the worker log is a plain file.
    print(*args, flush=True)


async def serve(pool: str, limit: int, name: str, executor: str = "fork") -> None:
    """Run the worker until interrupted, as ``prefect worker start`` does (``start()`` enters its context)."""
    forks = ForkServer() if executor == "fork" else None
    if forks is not None:
        await forks.start()
    worker = YeongyeWorker(name=name, work_pool_name=pool, limit=limit, forks=forks)
    try:
        await worker.start(printer=_print)
    finally:
        if forks is not None:
            await forks.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m yeongye.worker", description="yeongye's Prefect process worker")
    parser.add_argument("--pool", required=True, help="work pool to poll")
    parser.add_argument("--limit", type=int, required=True, help="flow runs executed at once")
    parser.add_argument("--name", required=True, help="worker name (heartbeats are looked up by it)")
    parser.add_argument("--executor", choices=EXECUTORS, default="fork", help="fork (warm, default) or process")
    args = parser.parse_args(argv)
    # Prefect's worker signal handling: the first SIGTERM/SIGINT stops polling and lets running
    # flow runs go on, a second one kills. yeongye.processes stops children relying on this.
    setup_signal_handlers_worker(os.getpid(), "the yeongye worker", _print)
    try:
        asyncio.run(serve(args.pool, args.limit, args.name, args.executor))
    except KeyboardInterrupt:
        print(f"워커 {args.name!r} 중지 (worker stopped)", flush=True)


if __name__ == "__main__":
    main()
