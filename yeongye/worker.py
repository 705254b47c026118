"""The stack's Prefect process worker: Prefect's own, minus a crash on quickly resumed flow runs.

Why not ``prefect worker start``: a case answered several times within seconds resumes its
suspended flow run while the worker still holds the concurrency slot of the run's previous
execution (the slot is released only after the worker has reaped that process). Prefect's
worker then asks its limiter for a second slot for the same flow run id, anyio raises
``RuntimeError: this borrower is already holding one of this CapacityLimiter's tokens``, and the
whole worker dies (Prefect issues #10632 and #16806). ``YeongyeWorker`` leaves such a run for a
later poll, by which time the slot is free; everything else is Prefect's ``ProcessWorker``.

Run as ``python -m yeongye.worker --pool yeongye --limit 8 --name yeongye-local``; the Prefect
settings (API URL, query seconds, ...) come from the environment, as for ``prefect worker start``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import warnings
from typing import TYPE_CHECKING

from prefect.utilities.processutils import setup_signal_handlers_worker
from prefect.workers.process import ProcessWorker

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun
    from prefect.client.schemas.responses import WorkerFlowRunResponse


with warnings.catch_warnings():
    # Prefect's type registry warns that this class takes over the "process" key from
    # ProcessWorker; that is the point, and only in the process that imports this module.
    warnings.filterwarnings("ignore", message=".*matches existing registered type.*")

    class YeongyeWorker(ProcessWorker):
        """A ``ProcessWorker`` that never submits a flow run whose previous execution still holds a slot."""

        type = "process"

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


async def serve(pool: str, limit: int, name: str) -> None:
    """Run the worker until interrupted, as ``prefect worker start`` does (``start()`` enters its context)."""
    worker = YeongyeWorker(name=name, work_pool_name=pool, limit=limit)
    await worker.start(printer=_print)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m yeongye.worker", description="yeongye's Prefect process worker")
    parser.add_argument("--pool", required=True, help="work pool to poll")
    parser.add_argument("--limit", type=int, required=True, help="flow runs executed at once")
    parser.add_argument("--name", required=True, help="worker name (heartbeats are looked up by it)")
    args = parser.parse_args(argv)
    # Prefect's worker signal handling: the first SIGTERM/SIGINT stops polling and lets running
    # flow runs go on, a second one kills. yeongye.processes stops children relying on this.
    setup_signal_handlers_worker(os.getpid(), "the yeongye worker", _print)
    try:
        asyncio.run(serve(args.pool, args.limit, args.name))
    except KeyboardInterrupt:
        print(f"워커 {args.name!r} 중지 (worker stopped)", flush=True)


if __name__ == "__main__":
    main()
