"""Case-level steps: moving to a stage, publishing the timeline to Prefect, closing the case."""

from __future__ import annotations

import re

from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run, task_run
from sqlalchemy import select

from registry import cases
from registry.models import Case
from registry.timeline import case_timeline
from tasks import runtime
from tasks.retry import CodedError, handoff_task


class NotThisCase(CodedError):
    """A flow run started on a case that is not its own; the message holds codes and references only.

    Not even the case reference: it is whatever was typed into the Run form, already the run's parameter.
    """


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
            raise NotThisCase("unknown-case")
        if case.status != "open":
            raise NotThisCase("case-closed")
        if case.intervention != intervention:
            raise NotThisCase(f"wrong-intervention: the case is {case.intervention}, not {intervention}")
        if case.flow_run_id and case.flow_run_id != this_run:
            raise NotThisCase(f"another-run: the case belongs to flow run {case.flow_run_id}")
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


# Status codes as the artifact shows them, Korean first; an unknown code is shown as it is.
STATUS_LABELS = {
    "open": "진행 중 (open)",
    "closed": "종결 (closed)",
    "requested": "요청 (requested)",
    "received": "접수 (received)",
    "accepted": "수락 (accepted)",
    "in-progress": "진행 중 (in progress)",
    "on-hold": "보류 (on hold)",
    "rejected": "거절·반려 (rejected)",
    "completed": "완료 (completed)",
    "cancelled": "취소 (cancelled)",
    "failed": "기한 초과 (timed out)",
    "approved": "승인 (approved)",
}
REASON_RECORDED = "사유 있음 (reason recorded)"

# Every character markdown or HTML could read as markup; a backslash makes each one literal text.
_MARKUP = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&\"'=:/])")


def escaped(value: object) -> str:
    """``value`` as literal text in markdown: no link, no image, no HTML, no table cell break.

    Only codes, references and dates reach the artifact, but an agency or staff id is typed by
    someone too; a value such as ``![x](http://…)`` must stay text and load nothing.
    """
    text = " ".join(str(value).split())  # one line: a newline would end the table row
    return _MARKUP.sub(r"\\\1", text)


def _status(code: str | None) -> str:
    return escaped(STATUS_LABELS.get(code or "", code or "-"))


def _reason(text: str | None) -> str:
    """Whether a reason was given, never the reason: it is what a person wrote about the resident."""
    return REASON_RECORDED if text else "-"


def _markdown(t: dict) -> str:  # type: ignore[type-arg]
    """The timeline as the Prefect artifact shows it: codes with labels, agency ids, dates and counts.

    No free text (reasons, a conference's place): Prefect's UI and API show artifacts to everyone
    who may see the flow runs. Every value is escaped (``escaped``).
    """
    e = escaped
    lines = [
        f"# {e(t['case'])} · {e(t['intervention'])} · {e(t['complex'])}단지",
        f"상태 **{_status(t['status'])}** · 단계 **{e(t['stage'])}** · 결과 {e(t['outcome'] or '-')}",
        "",
        "## 연계 (referrals)",
        "| 단계 | 기관 | 서비스 | 상태 | 사유 | 결과 | 기한 |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {e(r['step'])} | {e(r['agency'])} | {e(r['service'])} | {_status(r['status'])} | {_reason(r['reason'])}"
        f" | {e(r.get('outcome') or '-')} | {e(r['due'])} |"
        for r in t["referrals"]
    ]
    lines += ["", "## 결재 (decisions)", "| 항목 | 종류 | 결재자 | 상태 | 사유 | 기한 |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {e(a['key'])} | {e(a['kind'])} | {e(a['approver'])} | {_status(a['status'])} | {_reason(a['reason'])}"
        f" | {e(a['due'])} |"
        for a in t["approvals"]
    ]
    if t["conferences"]:
        lines += ["", "## 통합사례회의 (case conferences)", "| 단계 | 일시 | 열림 | 역할 | 참석 | 불참 |"]
        lines += ["|---|---|---|---|---|---|"]
        lines += [
            f"| {e(c['step'])} | {e(c['starts_at'])} | {_held(c['held'])} | {len(c['roles'] or [])}"
            f" | {sum(i['status'] in ('accepted', 'completed') for i in c['invitations'])}"
            f" | {sum(i['status'] == 'rejected' for i in c['invitations'])} |"
            for c in t["conferences"]
        ]
    waiting = ", ".join(e(w.get("agency") or w.get("key", "")) for w in t["waiting_for"]) or "-"
    lines += ["", f"**대기 중 (waiting for):** {waiting}"]
    return "\n".join(lines)


def _held(held: bool | None) -> str:
    return "-" if held is None else "예 (held)" if held else "아니오 (not held)"


@handoff_task(name="close-case", task_run_name="close-{outcome}")
def close_case(case_ref: str, outcome: str) -> str:
    with runtime.transaction() as session:
        cases.close_case(session, cases.find_case(session, case_ref), outcome=outcome, at=runtime.clock().now())
    return outcome
