"""Replay caching: a finished step is replayed, never confused with another step."""

from __future__ import annotations

from prefect import flow

from tasks.retry import handoff_task


@handoff_task(name="first-step", task_run_name="first-{case_ref}")
def first_step(case_ref: str) -> str:
    return f"first {case_ref}"


@handoff_task(name="second-step", task_run_name="second-{case_ref}")
def second_step(case_ref: str) -> str:
    return f"second {case_ref}"


@flow
def two_steps(case_ref: str) -> list[str]:
    return [first_step(case_ref), second_step(case_ref), first_step(case_ref)]


def test_different_steps_with_equal_inputs_keep_their_own_results(prefect_server: None) -> None:
    assert two_steps("C-2026-0001") == ["first C-2026-0001", "second C-2026-0001", "first C-2026-0001"]
