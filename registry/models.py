"""The registry's records: who the agencies are, who the residents are, and what happened in each case.

Everything personal about a resident lives here and only here; the rest of yeongye refers to a
resident by ``Resident.ref`` and to a case by ``Case.ref``. No Prefect imports: the registry must
be usable (and testable) without an orchestrator.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, list[dict[str, Any]]: JSON}


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AgencyType(Base):
    """One of the kinds of organisation a complex links with (study, tables 2 and 3)."""

    __tablename__ = "agency_type"
    code: Mapped[str] = mapped_column(String(48), primary_key=True)
    group: Mapped[str] = mapped_column(String(16))
    name_ko: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(96))
    source: Mapped[str] = mapped_column(String(16))


class Agency(Base):
    """A concrete organisation that receives handoffs by email."""

    __tablename__ = "agency"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    type_code: Mapped[str] = mapped_column(ForeignKey("agency_type.code"))
    district: Mapped[str] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str] = mapped_column(String(32))
    services: Mapped[list[str]] = mapped_column(default=list)
    rank: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    type: Mapped[AgencyType] = relationship()


class HolidayOverride(Base):
    """A day the holiday library gets wrong: a temporary holiday declared later, or a cancelled one."""

    __tablename__ = "holiday_override"
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    holiday: Mapped[bool] = mapped_column(Boolean)


class Centre(Base):
    """A housing welfare centre: the central centre, or a district centre that owns complexes and staff."""

    __tablename__ = "centre"
    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # "central" or "district" (registry.access)


class Complex(Base):
    __tablename__ = "complex"
    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    district: Mapped[str] = mapped_column(String(64))
    households: Mapped[int] = mapped_column(Integer)
    operator: Mapped[str] = mapped_column(String(64))
    # The district centre whose staff work here; None only in a registry loaded before centres
    # existed, and then no district centre sees it until the registry is loaded again.
    centre_code: Mapped[str | None] = mapped_column(ForeignKey("centre.code"), nullable=True)


class Staff(Base):
    """Coordinators (주거복지사), supervisors, centre administrators and the central centre's readers."""

    __tablename__ = "staff"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    email: Mapped[str] = mapped_column(String(254))
    complex_code: Mapped[str | None] = mapped_column(ForeignKey("complex.code"), nullable=True)
    centre_code: Mapped[str | None] = mapped_column(ForeignKey("centre.code"), nullable=True)
    # An argon2 hash (registry.accounts); None: the account cannot log in until a password is set.
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)


class StaffSession(Base):
    """A log-in: the token is kept as its SHA-256 only, so a copy of the database opens no session."""

    __tablename__ = "staff_session"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"))
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Resident(Base):
    """A resident. ``ref`` is the only field that may leave the registry."""

    __tablename__ = "resident"
    ref: Mapped[str] = mapped_column(String(32), primary_key=True)
    complex_code: Mapped[str] = mapped_column(ForeignKey("complex.code"))
    name: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(32))
    building: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str] = mapped_column(String(16))
    birth_year: Mapped[int] = mapped_column(Integer)
    lives_alone: Mapped[bool] = mapped_column(Boolean, default=False)
    # What decides a job track (registry.jobs); None until someone verified it.
    basic_pension: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    livelihood_benefit: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    employee_insured: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    ltc_grade: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    other_job_programme: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class Case(Base):
    __tablename__ = "case"
    __table_args__ = (
        # At most one open case of an intervention type per resident, enforced by the database.
        Index(
            "uq_case_open_per_resident",
            "resident_ref",
            "intervention",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(String(24), unique=True)
    intervention: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")
    stage: Mapped[str] = mapped_column(String(32), default="intake")
    complex_code: Mapped[str] = mapped_column(ForeignKey("complex.code"))
    # None for a group intervention (a programme for a complex, registry.cases.GROUP_INTERVENTIONS).
    resident_ref: Mapped[str | None] = mapped_column(ForeignKey("resident.ref"), nullable=True)
    # Which partner programme a group case runs (registry.programs.KINDS); None for every other case.
    program_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    coordinator_id: Mapped[str] = mapped_column(ForeignKey("staff.id"))
    supervisor_id: Mapped[str] = mapped_column(ForeignKey("staff.id"))
    flow_run_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # What the flow run is created with besides the case ref (a programme's sessions), so a run
    # that could not be created at launch, or went missing, is created again the same way.
    run_parameters: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utc_now)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Who launched the case: a logged-in member of staff, a detection sweep's runner, or
    # "case:<ref>" for a follow-on a flow opened. None for cases from before it was recorded.
    opened_by: Mapped[str | None] = mapped_column(String(64), nullable=True)

    complex: Mapped[Complex] = relationship()
    resident: Mapped[Resident | None] = relationship()
    coordinator: Mapped[Staff] = relationship(foreign_keys=[coordinator_id])
    supervisor: Mapped[Staff] = relationship(foreign_keys=[supervisor_id])


class Referral(Base):
    """One handoff of a case to one agency; status follows FHIR ``Task.status``."""

    __tablename__ = "referral"
    __table_args__ = (UniqueConstraint("case_id", "step", "agency_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"))
    step: Mapped[str] = mapped_column(String(48))
    agency_id: Mapped[str] = mapped_column(ForeignKey("agency.id"))
    service: Mapped[str] = mapped_column(String(48))
    status: Mapped[str] = mapped_column(String(16), default="requested")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    due_date: Mapped[dt.date] = mapped_column(Date)
    # A life-safety step's due time: its clock runs in hours on every day (registry.escalation
    # ``HOURS``), and ``due_date`` is that time's day in Seoul. None: the due date is the clock.
    due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # "handoff": the flow waits for the agency's answer; "invitation": answers are only recorded.
    kind: Mapped[str] = mapped_column(String(16), default="handoff", server_default="handoff")
    # How far the deadline ladder has gone (registry.escalation.LEVELS); 0 = nothing sent yet.
    escalation_level: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A due date the law sets (e.g. "정신건강복지법 §50③"): it is warned about before it runs out,
    # and it runs out on its day, not business days later.
    legal_basis: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The outcomes the agency may report when done (e.g. converted / discharged), and the one it did.
    outcomes: Mapped[list[str]] = mapped_column(default=list, server_default="[]")
    outcome: Mapped[str | None] = mapped_column(String(48), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utc_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utc_now)

    agency: Mapped[Agency] = relationship()


class Approval(Base):
    """A decision a person must take before the case moves on (consent, budget, closure ...)."""

    __tablename__ = "approval"
    __table_args__ = (UniqueConstraint("case_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"))
    key: Mapped[str] = mapped_column(String(48))
    kind: Mapped[str] = mapped_column(String(24))
    approver_id: Mapped[str] = mapped_column(ForeignKey("staff.id"))
    status: Mapped[str] = mapped_column(String(16), default="requested")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    due_date: Mapped[dt.date] = mapped_column(Date)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utc_now)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Consent(Base):
    """The resident's (or guardian's) consent: which agency types may learn what, for what purpose."""

    __tablename__ = "consent"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"))
    resident_ref: Mapped[str] = mapped_column(ForeignKey("resident.ref"))
    signer: Mapped[str] = mapped_column(String(16))
    agency_types: Mapped[list[str]] = mapped_column(default=list)
    purposes: Mapped[list[str]] = mapped_column(default=list)
    written: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utc_now)
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DisclosureBasis(Base):
    """A legal basis, other than consent, for telling an agency type about the resident.

    E.g. 정신건강복지법 §50 for the police and the hospital in an emergency admission, or §52② for
    notifying the 정신건강복지센터 of a discharge without consent. Recorded, never assumed.
    """

    __tablename__ = "disclosure_basis"
    __table_args__ = (UniqueConstraint("case_id", "agency_type"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"))
    agency_type: Mapped[str] = mapped_column(ForeignKey("agency_type.code"))
    basis: Mapped[str] = mapped_column(String(128))
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utc_now)


class FollowUp(Base):
    __tablename__ = "follow_up"
    __table_args__ = (UniqueConstraint("case_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"))
    key: Mapped[str] = mapped_column(String(48))
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"))
    due_date: Mapped[dt.date] = mapped_column(Date)


class Conference(Base):
    """A case conference (통합사례회의): when and where, who comes, what was decided.

    Minutes live here, never in Prefect: the flow only learns the conference's id and the roles.
    """

    __tablename__ = "conference"
    __table_args__ = (UniqueConstraint("case_id", "step"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"))
    step: Mapped[str] = mapped_column(String(48))
    starts_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    duration_minutes: Mapped[int] = mapped_column(Integer, default=90)
    place: Mapped[str] = mapped_column(String(128))
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    minutes: Mapped[str | None] = mapped_column(Text, nullable=True)
    # [{"agency_id": ..., "service": ...}]: the handoffs the conference decided on.
    roles: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    held: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    recorded_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ProgramSession(Base):
    """One session of a group programme (e.g. a monthly 마음건강 교육): planned, then held or cancelled."""

    __tablename__ = "program_session"
    __table_args__ = (UniqueConstraint("case_id", "number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"))
    number: Mapped[int] = mapped_column(Integer)
    planned_on: Mapped[dt.date] = mapped_column(Date)
    # planned, then held or cancelled (why it was cancelled is the reason of its decision).
    status: Mapped[str] = mapped_column(String(16), default="planned", server_default="planned")
    recorded_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ProgramParticipant(Base):
    """A resident invited to or enrolled in a programme: personal data, so it lives here and only here.

    ``priority`` is the invitation rank (isolated residents first); None for a resident who joined
    without an invitation.
    """

    __tablename__ = "program_participant"
    __table_args__ = (UniqueConstraint("case_id", "resident_ref"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"))
    resident_ref: Mapped[str] = mapped_column(ForeignKey("resident.ref"))
    priority: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="invited", server_default="invited")
    invited_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    enrolled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    resident: Mapped[Resident] = relationship()


class ProgramAttendance(Base):
    """Who attended a session (recorded by the coordinator with ``yeongye program attend``)."""

    __tablename__ = "program_attendance"
    __table_args__ = (UniqueConstraint("session_id", "resident_ref"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("program_session.id"))
    resident_ref: Mapped[str] = mapped_column(ForeignKey("resident.ref"))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utc_now)


class OutboxMessage(Base):
    """An email to send once; ``idempotency_key`` is derived from (case, step, recipient).

    Status: pending (due at ``next_attempt_at``, or now when unset) → sending (claimed) → sent;
    a message the mail server refused for good is ``failed`` until someone retries it.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"))
    agency_id: Mapped[str | None] = mapped_column(ForeignKey("agency.id"), nullable=True)
    to_addr: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(255))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    # An iCalendar (RFC 5545) part sent with the message, e.g. a case-conference invitation.
    calendar_ics: Mapped[str | None] = mapped_column(Text, nullable=True)
    message_id: Mapped[str] = mapped_column(String(255))
    # Threading: every message of a case to one recipient answers the one before it.
    reply_to: Mapped[str | None] = mapped_column(String(254), nullable=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(255), nullable=True)
    thread_refs: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utc_now)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEntry(Base):
    """Append-only trail: who did what to which case, who read whose personal data and why, and
    every disclosure to an agency (the access record PIPA asks for).

    Write it only through ``registry.audit.record``: the database refuses UPDATE and DELETE
    (migration 0012), and each row's ``hash`` chains it to the row before, so a row changed
    behind the database's back shows up in ``registry.audit.verify``.
    """

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utc_now)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case.id"), nullable=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(48))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The resident the row concerns (the case's resident, or whose data was read). No foreign key:
    # the trail must outlive a resident's record, which is destroyed when its retention ends.
    resident_ref: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    # Why: the purpose of a read (e.g. "case-work"), as the person reading gave it.
    purpose: Mapped[str | None] = mapped_column(String(128), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The end of the audit hash chain: one row, locked and moved by every append.

    Appends serialise on it (a row lock on PostgreSQL, the single writer on SQLite), so two
    transactions never chain onto the same predecessor; ``rows`` and ``hash`` also show rows cut
    off the end of the trail, which no later row would point at.
    """

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rows: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class SweepRun(Base):
    """One import of the management office's risk-signal file (registry.detection): counts only."""

    __tablename__ = "sweep_run"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The file's name (not its path, not its content) and how it was decoded.
    source: Mapped[str] = mapped_column(String(255))
    encoding: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utc_now)
    households: Mapped[int] = mapped_column(Integer, default=0)
    flagged: Mapped[int] = mapped_column(Integer, default=0)
    new_cases: Mapped[int] = mapped_column(Integer, default=0)


class RiskSignal(Base):
    """One household's row of a sweep file, as imported (personal data: stays in the registry)."""

    __tablename__ = "risk_signal"
    # The sweep_run's id, without a foreign key: the sweep writes both in one transaction, and a
    # key checked per row cost PostgreSQL 1.7 s of a 250,000-row sweep (migration 0010).
    sweep_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resident_ref: Mapped[str] = mapped_column(String(32), primary_key=True)
    complex_code: Mapped[str] = mapped_column(String(8))
    fee_arrears_months: Mapped[int] = mapped_column(Integer)
    rent_arrears_months: Mapped[int] = mapped_column(Integer)
    days_without_contact: Mapped[int] = mapped_column(Integer)
    power_cut: Mapped[bool] = mapped_column(Boolean)
    water_cut: Mapped[bool] = mapped_column(Boolean)
    gas_cut: Mapped[bool] = mapped_column(Boolean)
    odour_pest_complaints: Mapped[int] = mapped_column(Integer)
    lives_alone: Mapped[bool] = mapped_column(Boolean)
    age: Mapped[int] = mapped_column(Integer)


class RiskFlag(Base):
    """A rule (registry.detection.RULES) a household met in a sweep; ``new`` if not met in the sweep before."""

    __tablename__ = "risk_flag"
    sweep_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # sweep_run.id, as in RiskSignal
    resident_ref: Mapped[str] = mapped_column(String(32), primary_key=True)
    flag: Mapped[str] = mapped_column(String(24), primary_key=True)
    complex_code: Mapped[str] = mapped_column(String(8))
    new: Mapped[bool] = mapped_column(Boolean)


class Note(Base):
    """Free text a person typed for a case (a reason, a place): Prefect carries only its id.

    Flow-run inputs are readable through Prefect's API, so the forms hold a note's number and
    the flow's recording step reads the text from here (registry.notes).
    """

    __tablename__ = "note"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"), index=True)
    # What the text is for (registry.notes.KINDS), so a note written as a place is never read as a reason.
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    written_by: Mapped[str] = mapped_column(String(64))
    written_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utc_now)


class Incident(Base):
    """A task's error in full (a database error quotes its parameters); Prefect sees ``incident-<id>`` only."""

    __tablename__ = "incident"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utc_now)
    # The case reference (no foreign key: an incident is recorded even for a case that does not exist).
    case_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    task: Mapped[str] = mapped_column(String(64))
    error_class: Mapped[str] = mapped_column(String(128))
    detail: Mapped[str] = mapped_column(Text)


class Act(Base):
    """Who gave one input to a waiting case: the form Prefect keeps carries this row's id, never a name.

    Steering writes it for the authenticated person or the agency's link just before resuming the
    run; the flow reads the actor from here (``registry.acts``), so an input typed into Prefect's
    own UI, which no one signed, is refused.
    """

    __tablename__ = "act"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"), index=True)
    wait_key: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utc_now)


class CaseFinding(Base):
    """One thing a coordinator found about a case, as a code of a kind (``registry.findings``).

    The kinds are a housing-support case's needs (``registry.housing.NEEDS``) and what a hoarding
    case's home visit found (``registry.hoarding.FINDINGS``). Only the code is kept, never amounts
    or circumstances: the code is all the flow needs to choose its branch. A row present is a
    finding that holds; the coordinator removes it when it no longer does (a need settled), and
    the audit trail keeps every change.
    """

    __tablename__ = "case_finding"
    __table_args__ = (UniqueConstraint("case_id", "kind", "code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(32))
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utc_now)
