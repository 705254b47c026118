"""A flow run resumed before its previous execution gave back its worker slot must not kill the worker.

Answers that arrive within seconds of each other resume a suspended flow run while the worker
still holds the slot of the run's previous execution. Prefect's ProcessWorker then asks its
limiter for a second slot for the same flow run id and dies (Prefect issues #10632, #16806);
``yeongye.worker.YeongyeWorker`` leaves the run for the next poll. Both are driven here the way
their polling loop drives them, against the real test server, with a real flow-run process.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import FlowRun
from prefect.workers.process import ProcessWorker

from tests.driving import read_run
from yeongye.stack import PROJECT_ROOT
from yeongye.worker import YeongyeWorker

POOL = "slots"


@flow
def finish() -> str:
    """What the worker runs once the slot is free: any flow will do."""
    return "끝"


def _scheduled_run() -> UUID:
    """A flow run waiting in the pool, as a resumed run does (state Scheduled)."""
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=POOL, type="process"), overwrite=True)
        deployment_id = client.create_deployment(
            flow_id=client.create_flow_from_name("finish"),
            name="finish",
            work_pool_name=POOL,
            entrypoint=f"{Path(__file__).relative_to(PROJECT_ROOT)}:finish",
            pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT_ROOT)}}],
        )
        return client.create_flow_run_from_deployment(deployment_id).id


async def _polls(worker: ProcessWorker, flow_run_id: UUID) -> tuple[list[FlowRun], list[FlowRun]]:
    """One poll while the run's previous execution still holds a slot, one after it gave it back."""
    async with worker:
        await worker.sync_with_backend()
        worker.limiter.acquire_on_behalf_of_nowait(flow_run_id)  # the previous execution, still exiting
        try:
            while_held = await worker.get_and_submit_flow_runs()
        finally:
            worker.limiter.release_on_behalf_of(flow_run_id)
        return while_held, await worker.get_and_submit_flow_runs()


@pytest.mark.timeout(180)
def test_resumed_run_waits_for_its_slot_instead_of_crashing_the_worker(prefect_server: None) -> None:
    flow_run_id = _scheduled_run()

    # Prefect's own worker: the poll raises, which ends `prefect worker start`. When this stops
    # raising, Prefect has fixed the bug and yeongye.worker can go.
    with pytest.raises(ExceptionGroup) as raised:
        asyncio.run(_polls(ProcessWorker(name="prefect-worker", work_pool_name=POOL, limit=8), flow_run_id))
    assert raised.group_contains(RuntimeError, match="already holding one of this CapacityLimiter's tokens")
    assert read_run(flow_run_id).state_type.value == "SCHEDULED"  # type: ignore[union-attr]

    while_held, after = asyncio.run(
        _polls(YeongyeWorker(name="yeongye-worker", work_pool_name=POOL, limit=8), flow_run_id)
    )
    assert while_held == []
    assert [run.id for run in after] == [flow_run_id]
    deadline = time.monotonic() + 90
    while not (state := read_run(flow_run_id).state) or not state.is_final():
        assert time.monotonic() < deadline, state
        time.sleep(0.5)
    assert state.is_completed(), state
