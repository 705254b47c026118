"""Case-level steps: moving to a stage, publishing the timeline to Prefect, closing the case."""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run, task_run
from sqlalchemy import select

from registry import cases
from registry.models import Case
from registry.timeline import case_timeline
from tasks import runtime
from tasks.retry import handoff_task


class NotThisCase(Exception):
    """A flow run started on a case that is not its own; the message holds codes and references only."""


@handoff_task(name="check-case", task_run_name="check-case")
def check_case(case_ref: str, intervention: str) -> str:
    """Make sure the run may act on ``case_ref`` before it does anything, else fail it.

    Prefect's Run form takes any case reference, so a flow could be started on another
    intervention's case, on a closed one, or next to the case's own run, and would email
    agencies about it. Every flow calls this first: the case must exist, be open, be of this
    intervention, and not belong to another flow run. Otherwise the run fails with a code
    (unknown-case, case-closed, wrong-intervention, another-run) and has changed and sent nothing.
    """
    this_run = str(flow_run.get_id() or "")
    with runtime.transaction() as session:
        case = session.scalar(select(Case).where(Case.ref == case_ref))
        if case is None:
            raise NotThisCase(f"unknown-case: {case_ref}")
        if case.status != "open":
            raise NotThisCase(f"case-closed: {case_ref}")
        if case.intervention != intervention:
            raise NotThisCase(f"wrong-intervention: {case_ref} is {case.intervention}, not {intervention}")
        if case.flow_run_id and case.flow_run_id != this_run:
            raise NotThisCase(f"another-run: {case_ref} belongs to flow run {case.flow_run_id}")
    return intervention


def _stage_run_name() -> str:
    """``budget``, or ``budget@decision-budget-1`` when the stage is entered again for an occasion.

    Names tell the task runs of one flow run apart, in the UI and in the crash-every-step test.
    """
    parameters = task_run.parameters
    occasion = parameters.get("occasion")
    return f"{parameters['stage']}@{occasion}" if occasion else str(parameters["stage"])


@handoff_task(name="enter-stage", task_run_name=_stage_run_name)
def enter_stage(case_ref: str, stage: str, occasion: str = "") -> str:
    """Record the case's current stage; ``occasion`` tells apart returns to the same stage."""
    with runtime.transaction() as session:
        cases.set_stage(session, cases.find_case(session, case_ref), stage)
    return stage


@handoff_task(name="publish-timeline", task_run_name="timeline-{at}")
def publish_timeline(case_ref: str, at: str) -> str:
    """A new version of the case's timeline artifact (key ``case-c-2026-0001``), without personal data."""
    with runtime.transaction() as session:
        timeline = case_timeline(session, cases.find_case(session, case_ref))
    key = "case-" + case_ref.lower()
    create_markdown_artifact(key=key, markdown=_markdown(timeline), description=f"{case_ref} 사례 진행 현황")
    return key


def _markdown(t: dict) -> str:  # type: ignore[type-arg]
    lines = [
        f"# {t['case']} · {t['intervention']} · {t['complex']}단지",
        f"상태 **{t['status']}** · 단계 **{t['stage']}** · 결과 {t['outcome'] or '-'}",
        "",
        "## 연계 (referrals)",
        "| 단계 | 기관 | 서비스 | 상태 | 사유 | 기한 |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['step']} | {r['agency']} | {r['service']} | {r['status']} | {r['reason'] or ''} | {r['due']} |"
        for r in t["referrals"]
    ]
    lines += ["", "## 결재 (decisions)", "| 항목 | 종류 | 결재자 | 상태 | 사유 | 기한 |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {a['key']} | {a['kind']} | {a['approver']} | {a['status']} | {a['reason'] or ''} | {a['due']} |"
        for a in t["approvals"]
    ]
    waiting = ", ".join(w.get("agency") or w.get("key", "") for w in t["waiting_for"]) or "-"
    lines += ["", f"**대기 중 (waiting for):** {waiting}"]
    return "\n".join(lines)


@handoff_task(name="close-case", task_run_name="close-{outcome}")
def close_case(case_ref: str, outcome: str) -> str:
    with runtime.transaction() as session:
        cases.close_case(session, cases.find_case(session, case_ref), outcome=outcome, at=runtime.clock().now())
    return outcome
