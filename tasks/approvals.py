"""Decisions people take about a case: asking for one, and recording what they decided."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from registry import calendar, cases, notes, outbox
from registry.models import Case, Staff
from tasks import mailer, runtime
from tasks.log import logger
from tasks.retry import handoff_task
from tasks.waits import record_or_refuse
from templates import render, weekday

# How long a decision may take, in business days.
DECISION_DUE_BUSINESS_DAYS = 3

KIND_LABELS: dict[str, tuple[str, str]] = {
    "emergency-doctor-consent": (
        "응급입원에 대한 의사의 동의 기록 (정신건강복지법 §50①; 동의하지 않으면 반려와 사유)",
        "record the doctor's consent to emergency admission (§50①; reject with a reason if not given)",
    ),
    "mh-aftercare-exception": (
        "동의 없는 정신건강복지센터 통보 예외 확인 (§52②: 전문의 소견, 거부 시 §52④ 심사위원회 심사)",
        "confirm the exception to consent for notifying the centre (§52②; review board if refused, §52④)",
    ),
    "consent": ("입주민·보호의무자 서면 동의 기록", "record the written consent of resident or guardian"),
    "conference": ("통합사례회의 결과 기록", "record the integrated case conference"),
    "conference-schedule": ("통합사례회의 일시·장소 정하기", "schedule the integrated case conference"),
    "conference-minutes": ("통합사례회의 회의록·기관별 역할 기록", "record the conference's minutes and roles"),
    "budget": ("주거환경개선 예산 집행 승인", "approve the remediation budget"),
    "closure": ("사례 종결 승인", "approve closing the case"),
    "job-facts": (
        "일자리 자격 확인 사항 기록 (기초연금·생계급여·직장가입·장기요양등급; 등록부에만)",
        "record the job eligibility facts (pensions, benefits, insurance, care grade; registry only)",
    ),
    "home-visit-findings": (
        "가정방문 확인 사항 기록 (위기·의사결정능력·후견인·안전; 등록부에만, 저장강박 가구가 아니면 반려와 사유)",
        "record the home visit's findings (crisis, capacity, guardian, safety; registry only; reject with a reason"
        " if it is no hoarding household)",
    ),
    "housing-needs": (
        "주거 욕구 기록 (체납·주거비·긴급지원·이사·주거상향·주거이전·편의시설·집수리; 등록부에만, 없으면 반려와 사유)",
        "record the housing needs found (registry only; reject with a reason if there is none to meet)",
    ),
    "job-recruitment-window": (
        "시니어클럽 모집 기간이 열리면 신청 확인 (철회하면 반려와 사유)",
        "confirm the application once the senior club's recruitment opens (reject with a reason to withdraw)",
    ),
    "reroute": ("연계 기관 재지정", "name the next agency"),
    "program-plan": ("공동 프로그램 계획·예산 승인", "approve the joint programme's plan and budget"),
    "program-recruitment": ("프로그램 참여자 모집 완료 확인", "confirm that recruitment is complete"),
    "program-session": ("프로그램 회기 진행 확인 (출석 기록 후)", "confirm the session was held (after attendance)"),
}


# The command that answers a kind of decision other than with `yeongye approve` (emails quote it).
KIND_COMMANDS: dict[str, str] = {
    "consent": (
        'yeongye approve {case_ref}   (거부 / refused: --reject --reason "…"; 보호의무자 서명 / signed by a guardian:'
        " --guardian)"
    ),
    "reroute": 'yeongye reroute {case_ref} --agency AGENCY_ID   (건너뛰기 / skip: --skip --reason "…")',
    "conference-schedule": 'yeongye conference schedule {case_ref} --date YYYY-MM-DD --time HH:MM --place "…"',
    "conference-minutes": (
        "yeongye conference minutes {case_ref} --file minutes.txt --role AGENCY_ID=SERVICE …"
        ' (or --not-proceeding --reason "…")'
    ),
    "job-facts": (
        "yeongye jobs facts {case_ref} --basic-pension|--no-basic-pension --livelihood|--no-livelihood"
        " --employee-insured|--no-employee-insured --ltc-grade|--no-ltc-grade ;"
        " yeongye approve {case_ref}"
    ),
    "home-visit-findings": (
        "yeongye hoarding findings {case_ref} --emergency|--administrative --lacks-capacity --no-guardian"
        " --safety-risk (없으면 생략 / none: skip) ; yeongye approve {case_ref}"
    ),
    "housing-needs": (
        "yeongye housing needs {case_ref} --arrears --moving-cost … (해결된 것 / settled: --no-…) ;"
        " yeongye approve {case_ref}"
    ),
    "program-recruitment": ("yeongye program enrol {case_ref} --resident R-… ; yeongye approve {case_ref}"),
    "program-session": (
        "yeongye program attend {case_ref} --session N --resident R-… ;"
        " yeongye approve {case_ref}"
        ' (열리지 않았으면 / not held: --reject --reason "…")'
    ),
}


def kind_label(kind: str, language: str) -> str:
    ko, en = KIND_LABELS[kind]
    return ko if language == "ko" else en


@handoff_task(name="request-approval", task_run_name="{key}-request")
def request_approval(case_ref: str, key: str, kind: str, approver_role: str, due_after: str = "") -> str:
    """Record that a decision is awaited and email the person who takes it; returns the due date.

    ``due_after`` (an ISO date) counts the due date from a later day than today: the minutes of
    a conference cannot be due before the conference has met.
    """
    settings = runtime.settings()
    with runtime.transaction() as session:
        case = cases.find_case(session, case_ref)
        approver: Staff = case.supervisor if approver_role == "supervisor" else case.coordinator
        today = calendar.today(runtime.clock())
        start = max(today, dt.date.fromisoformat(due_after)) if due_after else today
        due = runtime.business_calendar(session).add_business_days(start, DECISION_DUE_BUSINESS_DAYS)
        approval = cases.request_approval(session, case, key=key, kind=kind, approver_id=approver.id, due_date=due)
        subject, text, html = render(
            "approval",
            settings.language,
            case_ref=case.ref,
            approver_name=approver.name,
            complex_name=case.complex.name,
            kind_label=kind_label(kind, settings.language),
            due_date=approval.due_date.isoformat(),
            due_weekday=weekday(approval.due_date, settings.language),
            command=KIND_COMMANDS.get(kind, "").format(case_ref=case.ref),
            approver_id=approver.id,
        )
        message, _ = outbox.enqueue(
            session,
            case,
            key=outbox.idempotency_key(case.ref, key, approver.id),
            agency_id=None,
            draft=outbox.Draft(approver.email, subject, text, html, reply_to=case.coordinator.email),
            domain=settings.mail_from.rpartition("@")[2] or "yeongye.local",
        )
        outbox_id, due_iso = message.id, approval.due_date.isoformat()
    mailer.deliver(outbox_id)
    return due_iso


@handoff_task(name="record-decision", task_run_name="{wait}-decided", added_inputs=("act",))
def record_decision(
    case_ref: str, key: str, approved: bool, reason_note: int | None, wait: str, act: int | None
) -> str:
    """Record the decision given at ``wait`` in the name of whoever signed it (``act``); returns
    approved, rejected or invalid.

    An unsigned decision is not taken to be the approver's: like a rejection without a reason, it
    is invalid, and the form is shown again. The reason is the registry note ``reason_note``.
    """
    return _decide(case_ref, key, approved, "", reason_note, wait, act)


@handoff_task(
    name="record-coordinator-decision",
    task_run_name="{wait}-coordinator-decided",
    added_inputs=("reason_note", "act"),
)
def record_coordinator_decision(
    case_ref: str,
    key: str,
    approved: bool,
    reason: str,
    wait: str,
    reason_note: int | None = None,
    act: int | None = None,
) -> str:
    """Record a choice made on one of the coordinator's own forms (naming the next agency, moving the
    conference), in the name of whoever signed the form.

    ``reason`` is the flow's own wording (a code, "rescheduled"), used when no note was written;
    what the person wrote is the note ``reason_note``, read from the registry.
    """
    return _decide(case_ref, key, approved, reason, reason_note, wait, act)


def _decide(
    case_ref: str, key: str, approved: bool, reason: str, reason_note: int | None, wait: str, act: int | None
) -> str:
    """Decide the request ``key`` as the signer of ``act``; a request decided before (a replay) stays as it is."""

    def write(session: Session, case: Case, by: str) -> str:
        approval = cases.find_approval(session, case, key)
        written = notes.text_of(session, case, reason_note, notes.REASON, "reason_note (--reason)")
        cases.decide(
            session, case, approval, approved=approved, reason=written or reason, by=by, at=runtime.clock().now()
        )
        return approval.status

    with runtime.transaction() as session:
        decided = cases.find_approval(session, cases.find_case(session, case_ref), key).status
    status = decided if decided != "requested" else record_or_refuse(case_ref, act, wait, write)
    if status is None:
        return "invalid"
    logger(case_ref, key).info("decision-recorded", status=status, wait=wait)
    return status


@handoff_task(name="record-consent", task_run_name="{key}-consent", added_inputs=("act", "wait"))
def record_consent(
    case_ref: str,
    key: str,
    given: bool,
    signer: str,
    written: bool,
    agency_types: list[str],
    purpose: str,
    act: int | None = None,
    wait: str = "",
) -> bool | None:
    """Record the consent answer given at ``wait`` as its signer's record; only written consent
    opens the gate (hoarding ordinances). None: the input was not signed, and is asked again."""

    def write(session: Session, case: Case, by: str) -> bool:
        approval = cases.find_approval(session, case, key)
        consent = cases.record_consent(
            session,
            case,
            given=given,
            signer=signer,
            written=written,
            agency_types=agency_types,
            purposes=[purpose],
            at=runtime.clock().now(),
            by=by,
        )
        cases.decide(
            session,
            case,
            approval,
            approved=consent.status == "given",
            reason="" if consent.status == "given" else "동의 거부 또는 서면 동의 없음",
            by=by,
            at=runtime.clock().now(),
        )
        return consent.status == "given"

    return record_or_refuse(case_ref, act, wait or key, write)
