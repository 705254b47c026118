"""The rules of a case: opening it, handing it off to agencies, decisions, consent, closing.

Functions take an open ``Session`` and leave committing to the caller, so one handoff is one
transaction. Every function that a retried or replayed step may call twice is idempotent.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry import audit as trail
from registry import interventions
from registry.calendar import SEOUL
from registry.catalog import HEALTH_SERVICES, NEUTRAL_SERVICE, service_label
from registry.models import (
    Agency,
    Approval,
    Case,
    Complex,
    Consent,
    DisclosureBasis,
    FollowUp,
    Referral,
    Resident,
    Staff,
)

# Every intervention a case can be of: the flows of the catalogue that open cases.
INTERVENTIONS = interventions.INTERVENTIONS
# Interventions for a complex rather than one resident (a joint programme): their case has no resident.
GROUP_INTERVENTIONS = ("program",)

# What an answer may say: the FHIR Task.status an agency moves a referral to, or "timed-out",
# which the deadline sweep gives when nobody answered by the final deadline (FHIR "failed").
ANSWER_STATUSES = ("accepted", "rejected", "completed", "timed-out")
TIMED_OUT_REASON = "최종 기한까지 회신 없음 (no answer by the final deadline)"
REASON_REQUIRED = frozenset({"rejected", "cancelled", "on-hold", "failed"})
FINAL_STATUSES = frozenset({"rejected", "completed", "cancelled", "failed"})


class CaseError(ValueError):
    """Bad input about a case; the message names the field and is safe to show a coordinator."""


def audit(session: Session, case: Case | None, actor: str, action: str, **detail: Any) -> None:
    """Record an act on a case in the audit trail (``registry.audit.record``, the one writer).

    Kept with this signature for the many call sites in the flows' tasks; the row names the
    case's resident, so ``yeongye audit --resident`` lists it.
    """
    trail.record(session, actor=actor, action=action, case=case, **detail)


def find_case(session: Session, ref: str) -> Case:
    case = session.scalar(select(Case).where(Case.ref == ref))
    if case is None:
        raise CaseError(f"case: 사례 '{ref}'를 찾을 수 없습니다 (unknown case)")
    return case


def open_case(
    session: Session,
    *,
    intervention: str,
    complex_code: str,
    resident_ref: str | None,
    opened_at: dt.datetime,
    program_kind: str | None = None,
    run_parameters: dict[str, Any] | None = None,
    by: str,
) -> Case:
    """Validate a launch request and create the case; raises ``CaseError`` naming the bad field.

    A group intervention (``GROUP_INTERVENTIONS``) is for the whole complex and takes no resident;
    every other intervention needs one. ``program_kind`` says which programme a group case runs
    (checked first with ``registry.programs.check_launch``, which knows the kinds).
    """
    coordinator, supervisor = check_launch(
        session, intervention=intervention, complex_code=complex_code, resident_ref=resident_ref
    )
    # The number comes from the row id, so concurrent launches never race for the same one.
    case = Case(
        ref=f"new-{uuid.uuid4().hex[:16]}",  # replaced below, once the row has its id
        intervention=intervention,
        complex_code=complex_code,
        resident_ref=resident_ref or None,
        program_kind=program_kind,
        run_parameters=run_parameters or None,
        coordinator_id=coordinator.id,
        supervisor_id=supervisor.id,
        opened_at=opened_at,
        opened_by=by,
    )
    session.add(case)
    try:
        session.flush()
    except IntegrityError as error:  # a simultaneous launch for the same resident won the race
        raise CaseError(
            f"--resident: 입주민 '{resident_ref}'에게 진행 중인 {intervention} 사례가 있습니다 "
            f"(an open {intervention} case already exists)"
        ) from error
    case.ref = f"C-{opened_at.year}-{case.id:04d}"
    session.flush()
    return case


def check_launch(
    session: Session, *, intervention: str, complex_code: str, resident_ref: str | None
) -> tuple[Staff, Staff]:
    """Refuse a launch request, naming the bad field, before anything is written or asked of Prefect.

    Returns the coordinator and the supervisor the case will have.
    """
    check_intervention(intervention)
    complex_ = session.get(Complex, complex_code)
    if complex_ is None:
        raise CaseError(f"--complex: 단지 '{complex_code}'가 등록되어 있지 않습니다 (unknown complex)")
    if intervention in GROUP_INTERVENTIONS:
        if resident_ref:
            raise CaseError(
                f"--resident: {intervention}은 단지 단위 개입이라 입주민을 지정하지 않습니다 "
                "(a group intervention takes no resident)"
            )
    else:
        _check_resident(session, intervention, complex_code, resident_ref)
    coordinator = session.scalar(
        select(Staff).where(Staff.role == "coordinator", Staff.complex_code == complex_code).order_by(Staff.id)
    )
    # The centre that owns the complex supervises its cases.
    supervisor = session.scalar(
        select(Staff).where(Staff.role == "supervisor", Staff.centre_code == complex_.centre_code).order_by(Staff.id)
    )
    if coordinator is None or supervisor is None:
        raise CaseError(
            f"--complex: {complex_code}단지에 담당 주거복지사 또는 슈퍼바이저가 없습니다 (no coordinator/supervisor)"
        )
    return coordinator, supervisor


def check_intervention(intervention: str) -> None:
    """Refuse an intervention the catalogue does not have, before anything (Prefect included) is asked."""
    if intervention not in INTERVENTIONS:
        raise CaseError(f"intervention: 알 수 없는 개입 유형 '{intervention}' (unknown intervention)")


def _check_resident(session: Session, intervention: str, complex_code: str, resident_ref: str | None) -> None:
    """A resident intervention needs a registered resident of the complex with no open case of its kind."""
    if not resident_ref:
        raise CaseError(f"--resident: {intervention}에는 입주민을 지정해야 합니다 (a resident is required)")
    resident = session.get(Resident, resident_ref)
    if resident is None:
        raise CaseError(f"--resident: 입주민 '{resident_ref}'가 등록되어 있지 않습니다 (unknown resident)")
    if resident.complex_code != complex_code:
        raise CaseError(
            f"--resident: 입주민 '{resident_ref}'는 {complex_code}단지 입주민이 아닙니다 "
            f"(resident lives in complex {resident.complex_code})"
        )
    open_ref = session.scalar(
        select(Case.ref).where(
            Case.resident_ref == resident_ref, Case.intervention == intervention, Case.status == "open"
        )
    )
    if open_ref:
        raise CaseError(
            f"--resident: 입주민 '{resident_ref}'에게 진행 중인 {intervention} 사례 {open_ref}가 있습니다 "
            f"(an open {intervention} case already exists)"
        )


def attach_flow_run(session: Session, case: Case, flow_run_id: str) -> None:
    """The case's process exists: from now on the case is open for good."""
    case.flow_run_id = flow_run_id
    audit(session, case, case.opened_by or "unrecorded", "case-opened", intervention=case.intervention)


def set_stage(session: Session, case: Case, stage: str) -> None:
    if case.stage != stage:
        case.stage = stage
        audit(session, case, "flow", "stage", stage=stage)


def open_referral_of_type(session: Session, case: Case, step: str, type_code: str, service: str) -> Referral | None:
    """The referral of a need (agency type and service) still open in this step, if one was made.

    A need has at most one open referral at a time (a replacement is made only once the previous
    one declined or timed out), so asking for the need again, as a flow run re-executing after a
    crash does, finds the referral made the first time instead of moving on to another agency.
    """
    return session.scalar(
        select(Referral)
        .join(Agency, Agency.id == Referral.agency_id)
        .where(
            Referral.case_id == case.id,
            Referral.step == step,
            Referral.service == service,
            Referral.kind == "handoff",
            Referral.status.not_in(FINAL_STATUSES),
            Agency.type_code == type_code,
        )
        .order_by(Referral.id.desc())
    )


def choose_agency(session: Session, case: Case, type_code: str, step: str) -> Agency | None:
    """The best agency of a type in the case's district not yet asked in this step (rank, then id)."""
    asked = select(Referral.agency_id).where(Referral.case_id == case.id, Referral.step == step)
    return session.scalar(
        select(Agency)
        .where(
            Agency.type_code == type_code,
            Agency.active.is_(True),
            Agency.district == case.complex.district,
            Agency.id.not_in(asked),
        )
        .order_by(Agency.rank, Agency.id)
    )


def open_referral(
    session: Session,
    case: Case,
    *,
    step: str,
    agency: Agency,
    service: str,
    due_date: dt.date,
    kind: str = "handoff",
    legal_basis: str | None = None,
    outcomes: list[str] | None = None,
    due_at: dt.datetime | None = None,
) -> Referral:
    """Create the referral once; asking again for the same (case, step, agency) returns it.

    ``kind`` is "invitation" for a conference invitation: its answer is recorded, not waited for.
    ``legal_basis`` marks a due date the law sets; ``outcomes`` lists what the agency may report
    when done (e.g. "converted" / "discharged"), the flow branching on it. ``due_at`` makes the
    step's clock run in hours (a life-safety step); ``due_date`` is then its day in Seoul.
    """
    existing = session.scalar(
        select(Referral).where(Referral.case_id == case.id, Referral.step == step, Referral.agency_id == agency.id)
    )
    if existing:
        return existing
    referral = Referral(
        case_id=case.id,
        step=step,
        agency_id=agency.id,
        service=service,
        due_date=due_at.astimezone(SEOUL).date() if due_at else due_date,
        # Stored in UTC: SQLite drops the zone (registry.escalation reads a naive value as UTC).
        due_at=due_at.astimezone(dt.UTC) if due_at else None,
        kind=kind,
        legal_basis=legal_basis,
        outcomes=outcomes or [],
    )
    session.add(referral)
    session.flush()
    audit(
        session, case, case.coordinator_id, "referral-opened", step=step, agency=agency.id, service=service, kind=kind
    )
    return referral


def find_referral(session: Session, case: Case, step: str, agency_id: str) -> Referral | None:
    return session.scalar(
        select(Referral).where(Referral.case_id == case.id, Referral.step == step, Referral.agency_id == agency_id)
    )


def referrals_in_step(session: Session, case: Case, step: str) -> list[Referral]:
    return list(
        session.scalars(
            select(Referral).where(Referral.case_id == case.id, Referral.step == step).order_by(Referral.id)
        )
    )


def record_answer(
    session: Session,
    case: Case,
    referral: Referral,
    *,
    status: str,
    reason: str,
    actor: str,
    at: dt.datetime,
    outcome: str = "",
) -> bool:
    """Apply an agency's answer; returns False (and changes nothing) when it would be a no-op or came too late.

    The status moves by compare and set: the deadline sweep may time the referral out in another
    transaction at the same moment, and exactly one of the two moves it on. The loser changes
    nothing and finds ``referral`` as the winner left it.
    """
    if status not in ANSWER_STATUSES:
        raise CaseError(f"status: '{status}'는 허용되지 않습니다; {', '.join(ANSWER_STATUSES)} 중 하나")
    if status in REASON_REQUIRED and not reason.strip():
        raise CaseError("reason: 거절 사유를 입력해야 합니다 (a reason is required)")
    if status == "completed" and referral.outcomes and outcome not in referral.outcomes:
        raise CaseError(f"outcome: 결과를 골라야 합니다; {', '.join(referral.outcomes)} 중 하나 (choose an outcome)")
    if outcome and (status != "completed" or outcome not in referral.outcomes):
        raise CaseError(f"outcome: '{outcome}'는 이 연계의 결과가 아닙니다 (not an outcome of this referral)")
    if status == "timed-out":
        status, reason = "failed", reason or TIMED_OUT_REASON
    if referral.status in FINAL_STATUSES or referral.status == status:
        return False
    moved = session.execute(
        update(Referral)
        .where(Referral.id == referral.id, Referral.status == referral.status)
        .values(status=status, reason=reason or None, outcome=outcome or None, updated_at=at)
        .execution_options(synchronize_session=False)
    )
    session.refresh(referral)
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return False
    audit(
        session,
        case,
        actor,
        "referral-answered",
        step=referral.step,
        agency=referral.agency_id,
        status=status,
        reason=reason,
        outcome=outcome,
    )
    return True


def request_approval(
    session: Session, case: Case, *, key: str, kind: str, approver_id: str, due_date: dt.date
) -> Approval:
    existing = session.scalar(select(Approval).where(Approval.case_id == case.id, Approval.key == key))
    if existing:
        return existing
    approval = Approval(case_id=case.id, key=key, kind=kind, approver_id=approver_id, due_date=due_date)
    session.add(approval)
    session.flush()
    audit(session, case, "flow", "approval-requested", key=key, kind=kind, approver=approver_id)
    return approval


def find_approval(session: Session, case: Case, key: str) -> Approval:
    approval = session.scalar(select(Approval).where(Approval.case_id == case.id, Approval.key == key))
    if approval is None:
        raise CaseError(f"approval: 사례 {case.ref}에 '{key}' 결재 요청이 없습니다")
    return approval


def check_decider(session: Session, approval: Approval, by: str) -> None:
    """A decision is taken by a registered staff member, and one asked of a supervisor by a supervisor.

    A coordinator may not close a case or commit a budget in the supervisor's place; a supervisor
    may take a coordinator's decision (standing in for them).
    """
    decider = session.get(Staff, by)
    if decider is None:
        raise CaseError("결정자 (decided by): 등록되지 않은 직원 ID입니다 (unknown staff id)")
    approver = session.get(Staff, approval.approver_id)
    if approver is not None and approver.role == "supervisor" and decider.role != "supervisor":
        raise CaseError(
            "결정자 (decided by): 수퍼바이저가 할 결정입니다; 주거복지사는 할 수 없습니다 "
            "(a supervisor's decision: a coordinator may not take it)"
        )


def decide(
    session: Session, case: Case, approval: Approval, *, approved: bool, reason: str, by: str, at: dt.datetime
) -> None:
    if approval.status != "requested":
        return
    check_decider(session, approval, by)
    if not approved and not reason.strip():
        raise CaseError("reason: 반려 사유를 입력해야 합니다 (a reason is required to reject)")
    approval.status = "approved" if approved else "rejected"
    approval.reason = reason or None
    approval.decided_by = by
    approval.decided_at = at
    audit(session, case, by, "approval-decided", key=approval.key, status=approval.status, reason=reason)


def record_consent(
    session: Session,
    case: Case,
    *,
    given: bool,
    signer: str,
    written: bool,
    agency_types: list[str],
    purposes: list[str],
    at: dt.datetime,
    by: str,
) -> Consent:
    """Record what the resident (or guardian) answered, as recorded by ``by``."""
    consent = Consent(
        case_id=case.id,
        resident_ref=case.resident_ref,
        signer=signer,
        written=written,
        agency_types=agency_types if given else [],
        purposes=purposes if given else [],
        status="given" if given and written else "refused",
        recorded_at=at,
    )
    session.add(consent)
    session.flush()
    audit(session, case, by, "consent-recorded", status=consent.status, signer=signer, written=written)
    return consent


def record_disclosure_basis(session: Session, case: Case, *, agency_types: list[str], basis: str, by: str) -> None:
    """Record a legal basis for telling these agency types about the resident (once per type)."""
    known = {
        row.agency_type for row in session.scalars(select(DisclosureBasis).where(DisclosureBasis.case_id == case.id))
    }
    for agency_type in agency_types:
        if agency_type not in known:
            session.add(DisclosureBasis(case_id=case.id, agency_type=agency_type, basis=basis, recorded_by=by))
            audit(session, case, by, "disclosure-basis", agency_type=agency_type, basis=basis)
    session.flush()


def disclosure_basis(session: Session, case: Case, agency_type: str) -> str | None:
    """Why this agency type may learn about the resident: written consent, a recorded legal basis, or None."""
    consent = active_consent(session, case)
    if consent is not None and agency_type in consent.agency_types:
        return "written-consent"
    return session.scalar(
        select(DisclosureBasis.basis).where(
            DisclosureBasis.case_id == case.id, DisclosureBasis.agency_type == agency_type
        )
    )


def shown_service(session: Session, case: Case, referral: Referral, language: str) -> str:
    """The service as the agency may read it: a health service is named only with consent or a legal basis."""
    if referral.service in HEALTH_SERVICES and not disclosure_basis(session, case, referral.agency.type_code):
        ko, en = NEUTRAL_SERVICE
        return ko if language == "ko" else en
    return service_label(referral.service, language)


def active_consent(session: Session, case: Case) -> Consent | None:
    return session.scalar(
        select(Consent).where(Consent.case_id == case.id, Consent.status == "given").order_by(Consent.id.desc())
    )


def plan_follow_up(session: Session, case: Case, *, key: str, referral: Referral) -> FollowUp:
    existing = session.scalar(select(FollowUp).where(FollowUp.case_id == case.id, FollowUp.key == key))
    if existing:
        return existing
    follow_up = FollowUp(case_id=case.id, key=key, referral_id=referral.id, due_date=referral.due_date)
    session.add(follow_up)
    session.flush()
    return follow_up


def close_case(session: Session, case: Case, *, outcome: str, at: dt.datetime) -> None:
    """Close the case; handoffs still open are cancelled so nobody keeps waiting on them."""
    if case.status != "open":
        return
    for referral in session.scalars(select(Referral).where(Referral.case_id == case.id)):
        if referral.status not in FINAL_STATUSES:
            referral.status = "cancelled"
            referral.reason = "사례 종결 (case closed)"
            referral.updated_at = at
    case.status = "closed"
    case.outcome = outcome
    case.stage = "closed"
    case.closed_at = at
    audit(session, case, case.supervisor_id, "case-closed", outcome=outcome)
