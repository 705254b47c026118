"""The Prefect internals yeongye relies on, pinned: an upgrade that changes them fails here first.

``tasks.waits.wait_for`` reads every answered wait of a run in one call, by the key Prefect stores
an answer under (``response_key``), instead of asking Prefect wait by wait on replay.
"""

from __future__ import annotations

from uuid import UUID

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.exceptions import Pause
from prefect.flow_engine import run_flow
from prefect.flow_runs import resume_flow_run

from tasks import waits


class Answer(waits.Signed):
    given: bool


@flow(name="pinned-wait")
def pinned_wait() -> bool:
    return waits.wait_for(Answer, "decision-pinned-1", "pinned").given


def _execute(flow_run_id: UUID) -> object:
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
    try:
        return run_flow(pinned_wait, flow_run=flow_run)
    except Pause:
        return Pause


def test_an_answer_is_kept_under_the_response_key_and_replayed_from_it(prefect_server: None) -> None:
    deployment_id = pinned_wait.to_deployment(name="pinned-wait").apply()  # only a deployed run suspends
    with get_client(sync_client=True) as client:
        flow_run_id = client.create_flow_run_from_deployment(deployment_id).id

    assert _execute(flow_run_id) is Pause
    resume_flow_run(flow_run_id, run_input={"given": True, "act": 7})

    with get_client(sync_client=True) as client:
        stored = client.filter_flow_run_input(
            flow_run_id=flow_run_id, key_prefix="suspended-", limit=10, exclude_keys=set()
        )
        assert waits.response_key("decision-pinned-1") in {i.key for i in stored}
        assert _execute(flow_run_id) is True
        state = client.read_flow_run(flow_run_id).state
    assert state is not None and state.is_completed()
