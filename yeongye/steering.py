"""Launching and steering cases from outside the flow: what `launch`, `approve` and `respond` do.

A case waits on one pause key at a time; its first word says which form it expects (see
``tasks.waits``). Steering resumes the flow run with exactly what the Prefect UI form would send,
so the flow records the answer itself; the two ways of answering cannot diverge.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.exceptions import ObjectNotFound
from prefect.flow_runs import resume_flow_run

from registry import cases
from registry.calendar import SystemClock
from registry.db import Database
from registry.timeline import case_timeline
from tasks.waits import kind_of


def deployment_name(intervention: str) -> str:
    """Each intervention's flow and its deployment in prefect.yaml share the intervention's name."""
    return f"{intervention}/{intervention}"


class SteeringError(ValueError):
    """The case cannot take this input now; the message says why, Korean first."""


@dataclass(frozen=True)
class Launched:
    case_ref: str
    flow_run_id: str


def launch(db: Database, *, intervention: str, complex_code: str, resident_ref: str) -> Launched:
    """Open the case and start its flow run; if Prefect refuses, the case is removed again.

    The case is committed before Prefect is called, so no database lock is held across the call
    and simultaneous launches do not queue behind each other.
    """
    with db.transaction() as session:
        case_ref = cases.open_case(
            session,
            intervention=intervention,
            complex_code=complex_code,
            resident_ref=resident_ref,
            opened_at=SystemClock().now(),
        ).ref
    try:
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(deployment_name(intervention))
            flow_run = client.create_flow_run_from_deployment(
                deployment.id,
                parameters={"case_ref": case_ref},
                tags=[intervention, f"complex-{complex_code.lower()}"],
            )
    except BaseException:
        with db.transaction() as session:
            cases.discard_case(session, case_ref)
        raise
    with db.transaction() as session:
        cases.attach_flow_run(session, cases.find_case(session, case_ref), str(flow_run.id))
    return Launched(case_ref, str(flow_run.id))


@dataclass(frozen=True)
class Wait:
    kind: str
    key: str
    flow_run_id: UUID
    agencies: list[str]


def current_wait(db: Database, case_ref: str, *, settle_seconds: float = 30) -> Wait:
    """What the case's flow run is suspended on, or a clear error if it waits for nothing.

    A case that was just answered is still moving to its next wait; give it ``settle_seconds``
    to get there rather than telling the person to try again.
    """
    with db.transaction() as session:
        case = cases.find_case(session, case_ref)
        if case.status != "open":
            raise SteeringError(f"사례 {case_ref}는 종결되었습니다 (case is closed)")
        if not case.flow_run_id:
            raise SteeringError(f"사례 {case_ref}에 연결된 flow run이 없습니다")
        flow_run_id = UUID(case.flow_run_id)
    deadline = time.monotonic() + settle_seconds
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run_id).state
        while state is not None and not state.is_final() and not _suspended(state):
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
            state = client.read_flow_run(flow_run_id).state
    if state is None or not state.is_paused() or not state.state_details.pause_key:
        name = state.name if state else "없음"
        raise SteeringError(f"사례 {case_ref}는 지금 입력을 기다리지 않습니다 (flow run state: {name})")
    key = state.state_details.pause_key
    kind = kind_of(key)
    with db.transaction() as session:
        timeline = case_timeline(session, cases.find_case(session, case_ref))
    # An answer key is "answer-<step>-<turn>": the agencies are those still open in that step.
    step = key.removeprefix("answer-").rsplit("-", 1)[0] if kind == "answer" else ""
    agencies = [w["agency"] for w in timeline["waiting_for"] if w["kind"] == "answer" and w["step"] == step]
    return Wait(kind, key, flow_run_id, agencies)


def _suspended(state: State) -> bool:
    return state.is_paused() and bool(state.state_details.pause_key)


def _resume(wait: Wait, run_input: dict[str, Any]) -> None:
    """Resume, retrying while Prefect has not yet stored the form schema (it does so just after suspending)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            resume_flow_run(wait.flow_run_id, run_input=run_input)
            return
        except (RuntimeError, ObjectNotFound) as error:
            if "schema not found" not in str(error).lower() or time.monotonic() > deadline:
                raise SteeringError(f"재개할 수 없습니다 (cannot resume): {error}") from error
            time.sleep(0.5)


def approve(
    db: Database, case_ref: str, *, approved: bool, reason: str = "", by: str = "", signer: str = "resident"
) -> Wait:
    """Answer a decision, consent or reroute the case waits for."""
    wait = current_wait(db, case_ref)
    if not approved and not reason.strip():
        raise SteeringError("--reason: 반려·거부할 때는 사유를 입력해야 합니다 (a reason is required)")
    if wait.kind == "decision":
        _resume(wait, {"approved": approved, "reason": reason, "decided_by": by})
    elif wait.kind == "consent":
        _resume(wait, {"given": approved, "signer": signer, "written": True, "reason": reason})
    elif wait.kind == "reroute":
        raise SteeringError(
            "이 사례는 다음 기관 지정을 기다립니다: yeongye respond <사례> --agency <기관ID> --status accepted "
            "또는 Prefect 화면에서 입력하세요 (waits for an agency to be named)"
        )
    else:
        raise SteeringError(
            f"사례 {case_ref}는 기관 답변을 기다립니다: yeongye respond (waits for an agency answer: {wait.key})"
        )
    return wait


def respond(db: Database, case_ref: str, *, agency_id: str, status: str, reason: str = "") -> Wait:
    """Record an agency's answer (accepted / rejected / completed) to the referral the case waits on."""
    if status not in cases.ANSWER_STATUSES:
        raise SteeringError(f"--status: {', '.join(cases.ANSWER_STATUSES)} 중 하나여야 합니다")
    if status in cases.REASON_REQUIRED and not reason.strip():
        raise SteeringError("--reason: 거절할 때는 사유를 입력해야 합니다 (a reason is required)")
    wait = current_wait(db, case_ref)
    if wait.kind == "reroute":
        _resume(wait, {"agency_id": agency_id, "reason": reason})
        return wait
    if wait.kind != "answer":
        raise SteeringError(f"사례 {case_ref}는 결재를 기다립니다: yeongye approve (waits for a decision: {wait.key})")
    if agency_id not in wait.agencies:
        raise SteeringError(
            f"--agency: '{agency_id}'는 이 사례가 기다리는 기관이 아닙니다; 대기 중: {', '.join(wait.agencies)}"
        )
    _resume(wait, {"agency_id": agency_id, "status": status, "reason": reason})
    return wait
