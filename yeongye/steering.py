"""Launching and steering cases from outside the flow: what `launch`, `approve`, `respond`, `reroute`
and `conference` do, and what an answer link does.

A case waits on one pause key at a time; its first word says which form it expects (see
``tasks.waits``). Steering resumes the flow run with exactly what the Prefect UI form would send,
built by the form's own model, so the flow records the answer itself; the two ways of answering
cannot diverge. Each input acts only in its own name: an agency's answer resumes only the wait for
its own referral, a decision names who took it, and naming the next agency is the coordinator's.

Free text (a reason, a conference's place) never goes to Prefect, which keeps every run input: it
is written to a registry note (``registry.notes``) just before the run is resumed, and the input
carries the note's number.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, cast
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import State
from prefect.exceptions import NotPausedError, ObjectNotFound
from prefect.flow_runs import resume_flow_run
from prefect.input import RunInput
from prefect.input.actions import read_flow_run_input
from prefect.input.run_input import keyset_from_paused_state
from pydantic import ValidationError

from registry import access, acts, cases, conferences, detection, linkage, mental_health, notes, programs
from registry.calendar import SystemClock
from registry.db import Database
from registry.models import Agency, Referral
from registry.text import ID_MAX, MINUTES_MAX, PLACE_MAX, REASON_MAX, TextError, clean_text
from registry.timeline import case_timeline
from tasks import runtime, waits
from tasks.runtime import business_calendar


def deployment_name(intervention: str) -> str:
    """Each intervention's flow and its deployment in prefect.yaml share the intervention's name."""
    return f"{intervention}/{intervention}"


class SteeringError(ValueError):
    """The case cannot take this input now; the message says why, Korean first."""


@dataclass(frozen=True)
class Launched:
    case_ref: str
    flow_run_id: str


class RunNotStarted(SteeringError):
    """The case is recorded but its flow run could not be created yet; recovery creates it later."""

    def __init__(self, case_ref: str, error: BaseException) -> None:
        super().__init__(
            f"사례 {case_ref}는 등록되었지만 flow run 을 아직 만들지 못했습니다: {type(error).__name__}. "
            "스택이 곧 다시 시도합니다; 지금 하려면 yeongye doctor --repair "
            f"(case {case_ref} is recorded; the stack's recovery or `yeongye doctor --repair` creates its run)"
        )
        self.case_ref = case_ref


def launch(
    db: Database,
    *,
    intervention: str,
    complex_code: str,
    resident_ref: str | None,
    program_kind: str | None = None,
    parameters: dict[str, int] | None = None,
    agency_type: str | None = None,
    service: str | None = None,
    by: access.Principal | str,
) -> Launched:
    """Open the case, then create its flow run; idempotent end to end.

    The request and the deployment are checked first, so a launch that cannot go ahead opens
    nothing. The case is then committed before Prefect is called (no lock is held across the
    call, so simultaneous launches do not queue) and is never deleted: once the call starts, a
    run may exist. Its run is created with the case as Prefect's idempotency key, so creating it
    again (after a timeout, a crash, by the recovery) finds the same run, and a case number is
    never reused.
    A group intervention has no resident but a ``program_kind``; ``parameters`` are the flow's
    own settings (e.g. a programme's number of sessions), never anything about a person; a linkage
    takes the agency type and the service codes (``registry.linkage``).
    ``by`` is who launches: a logged-in member of staff of the complex's centre, or the name of
    what launched it for them (``case:<ref>`` for a follow-on).
    """
    cases.check_intervention(intervention)
    programs.check_launch(intervention, program_kind, parameters or {})
    run_parameters: dict[str, int | str] = {
        **(parameters or {}),
        **linkage.check_launch(intervention, agency_type, service),
    }
    with db.transaction() as session:
        if isinstance(by, access.Principal):
            access.check_work_on(session, by, complex_code, "launch")
        cases.check_launch(session, intervention=intervention, complex_code=complex_code, resident_ref=resident_ref)
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(deployment_name(intervention))
        except ObjectNotFound as error:
            raise SteeringError(
                f"배포 {deployment_name(intervention)} 가 없습니다: yeongye up 이 실행 중인지 확인하세요 "
                "(deployment not found; is the stack running?)"
            ) from error
    with db.transaction() as session:
        case_ref = cases.open_case(
            session,
            intervention=intervention,
            complex_code=complex_code,
            resident_ref=resident_ref,
            opened_at=SystemClock().now(),
            program_kind=program_kind,
            run_parameters=run_parameters,
            by=by.staff_id if isinstance(by, access.Principal) else by,
        ).ref
    try:
        with get_client(sync_client=True) as client:
            flow_run_id = start_run(db, client, case_ref, deployment.id)
    except Exception as error:
        raise RunNotStarted(case_ref, error) from error
    return Launched(case_ref, flow_run_id)


def start_run(db: Database, client: SyncPrefectClient, case_ref: str, deployment_id: UUID | None = None) -> str:
    """Create the case's flow run (or find the one created before) and attach it to the case.

    The idempotency key is the case: Prefect returns the existing run of this deployment with
    that key instead of making a second one. The key holds the moment the case was opened beside
    its reference, so a registry started afresh against an old Prefect database, whose numbering
    starts again at C-…-0001, never picks up a run of a different case.
    """
    with db.transaction() as session:
        case = cases.find_case(session, case_ref)
        if case.flow_run_id:
            return case.flow_run_id
        intervention, complex_code = case.intervention, case.complex_code
        parameters = dict(case.run_parameters or {})
        key = f"{case_ref}@{case.opened_at:%Y%m%dT%H%M%S.%f}"
    if deployment_id is None:
        deployment_id = client.read_deployment_by_name(deployment_name(intervention)).id
    flow_run = client.create_flow_run_from_deployment(
        deployment_id,
        parameters={**parameters, "case_ref": case_ref},
        tags=[intervention, f"complex-{complex_code.lower()}"],
        idempotency_key=key,
    )
    with db.transaction() as session:
        cases.attach_flow_run(session, cases.find_case(session, case_ref), str(flow_run.id))
    return str(flow_run.id)


@dataclass(frozen=True)
class OutreachLaunch:
    launched: list[str]
    pending: list[str]
    reason: str = ""


def launch_pending_outreach(db: Database) -> OutreachLaunch:
    """Start a flow run for every outreach case the detection sweep opened that has none yet.

    The sweep commits its cases first (registry.detection); this only attaches runs. Without an
    "outreach/outreach" deployment the cases stay open and pending, and the next call (the next
    sweep, ``yeongye sweep``, or the recovery) launches them, so a missing deployment loses no case.
    """
    with db.transaction() as session:
        pending = detection.pending_outreach(session)
    if not pending:
        return OutreachLaunch([], [])
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(deployment_name(detection.OUTREACH))
        except ObjectNotFound:
            reason = f"배포 {deployment_name(detection.OUTREACH)} 없음 (deployment not found)"
            return OutreachLaunch([], [ref for ref, _ in pending], reason)
        launched = [case_ref for case_ref, _ in pending if start_run(db, client, case_ref, deployment.id)]
    return OutreachLaunch(launched, [])


def start_deadline_sweep() -> str:
    """Run the scheduled deadline sweep now, as the same deployment the schedule runs."""
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(deployment_name("deadlines"))
        return str(client.create_flow_run_from_deployment(deployment.id, tags=["deadlines"]).id)


@dataclass(frozen=True)
class Wait:
    kind: str
    key: str
    flow_run_id: UUID
    agencies: list[str]
    step: str = ""
    schema_key: str = ""  # where Prefect keeps the schema of the form the case waits with


def current_wait(db: Database, case_ref: str, *, settle_seconds: float = 30) -> Wait:
    """What the case's flow run is suspended on, or a clear error if it waits for nothing.

    A case that was just answered is still moving to its next wait; give it ``settle_seconds``
    to get there rather than telling the person to try again.
    """
    case_ref = clean_text(case_ref, "case", ID_MAX)
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
    with db.transaction() as session:
        timeline = case_timeline(session, cases.find_case(session, case_ref))
    step = waits.step_of(key)
    agencies = [w["agency"] for w in timeline["waiting_for"] if w["kind"] == "answer" and w["step"] == step]
    return Wait(waits.kind_of(key), key, flow_run_id, agencies, step, keyset_from_paused_state(state)["schema"])


# What answers each kind of wait, for telling a person which command the case needs now.
_COMMANDS = {
    "answer": "yeongye respond",
    "reroute": "yeongye reroute",
    "decision": "yeongye approve",
    "consent": "yeongye approve",
    "schedule": "yeongye conference schedule",
    "minutes": "yeongye conference minutes",
    "scene": "yeongye emergency scene",
}

# The command-line option of each form field, so that a refused value is named as the person typed it.
_OPTIONS = {
    "agency_id": "--agency",
    "status": "--status",
    "reason": "--reason",
    "reason_note": "--reason",
    "outcome": "--outcome",
    "date": "--date",
    "time": "--time",
    "place": "--place",
    "place_note": "--place",
    "duration_minutes": "--duration",
    "roles": "--role",
    "requested_at": "--requested",
    "doctor_consented_at": "--doctor",
    "police_agency_id": "--police",
    "police_consented_at": "--police-consent",
    "escort": "--escort",
    "escort_agency_id": "--escort-agency",
    "hospital_agency_id": "--hospital",
    "admitted_at": "--admitted",
}


def _other_wait(case_ref: str, wait: Wait) -> SteeringError:
    return SteeringError(
        f"사례 {case_ref}는 지금 다른 입력을 기다립니다: {_COMMANDS.get(wait.kind, wait.kind)} (waits for {wait.key})"
    )


def _suspended(state: State) -> bool:
    return state.is_paused() and bool(state.state_details.pause_key)


def _input(form: type[RunInput], **values: Any) -> dict[str, Any]:
    """The run input as the form's own model makes it, which is what the Prefect UI sends.

    The model checks every field (``registry.text`` for text); a refused value is named by its
    command-line option, and nothing is resumed.
    """
    try:
        return form(**values).model_dump()
    except ValidationError as error:
        detail = error.errors()[0]
        field = str(detail["loc"][0]) if detail["loc"] else ""
        cause = detail.get("ctx", {}).get("error")
        why = cause.problem if isinstance(cause, TextError) else detail["msg"]
        raise SteeringError(f"{_OPTIONS.get(field, field)}: {why}") from None


def _checked(text: str, option: str, max_len: int, *, multiline: bool) -> str:
    """``text`` if it is fit to store (``registry.text``), else a ``SteeringError`` naming ``option``."""
    try:
        return clean_text(text, option, max_len, multiline=multiline)
    except TextError as error:
        raise SteeringError(f"{option}: {error.problem}") from None


def _reason(text: str) -> str:
    return _checked(text, "--reason", REASON_MAX, multiline=True)


def _worker(db: Database, case_ref: str, by: access.Principal, what: str) -> str:
    """``by``'s staff id, once it is clear they may change this case (``registry.access``)."""
    with db.transaction() as session:
        access.check_work_on_case(session, by, cases.find_case(session, clean_text(case_ref, "case", ID_MAX)), what)
    return by.staff_id


def _signed(
    db: Database,
    case_ref: str,
    wait: Wait,
    run_input: dict[str, Any],
    actor: str,
    note: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    """``run_input`` signed by ``actor`` for this wait (``registry.acts``), with its free text, if any,
    in a registry note: ``note`` is (form field, note kind, text).

    Called once everything else is checked, just before resuming.
    """
    with db.transaction() as session:
        case = cases.find_case(session, case_ref)
        signed = {**run_input, "act": acts.sign(session, case, wait.key, actor)}
        if note is not None:
            field, kind, text = note
            signed[field] = notes.write(session, case, kind=kind, text=text, by=actor) if text.strip() else None
    return signed


def _resume(wait: Wait, run_input: dict[str, Any]) -> None:
    """Resume the run with ``run_input``, as far as the form it waits with has those fields.

    Prefect stores the form's schema just after suspending, so wait for it. A wait suspended
    before a field was added (``referral_id``) refuses fields it does not know: they are left out.
    """
    deadline = time.monotonic() + 30
    while (schema := read_flow_run_input(wait.schema_key, flow_run_id=wait.flow_run_id)) is None:
        if time.monotonic() > deadline:
            raise SteeringError(f"재개할 수 없습니다 (cannot resume): {wait.key}의 입력 양식이 없습니다 (no form)")
        time.sleep(0.5)
    known = cast(dict[str, Any], schema).get("properties", {})
    try:
        resume_flow_run(wait.flow_run_id, run_input={name: v for name, v in run_input.items() if name in known})
    except (RuntimeError, ObjectNotFound, NotPausedError) as error:
        raise SteeringError(f"재개할 수 없습니다 (cannot resume): {error}") from error


def approve(
    db: Database, case_ref: str, *, approved: bool, reason: str = "", by: access.Principal, signer: str = "resident"
) -> Wait:
    """Answer the decision or the consent the case waits for, as ``by``.

    A decision asked of a supervisor is a supervisor's to take (``cases.check_decider``). Consent
    is the record, by a member of staff, of what the resident (or guardian) signed.
    """
    actor = _worker(db, case_ref, by, "approve")
    reason = _reason(reason)
    wait = current_wait(db, case_ref)
    if not approved and not reason.strip():
        raise SteeringError("--reason: 반려·거부할 때는 사유를 입력해야 합니다 (a reason is required)")
    if wait.kind == "decision":
        with db.transaction() as session:
            case = cases.find_case(session, case_ref)
            cases.check_decider(session, cases.find_approval(session, case, waits.request_of(wait.key)), actor)
        run_input = _input(waits.Decision, approved=approved)
    elif wait.kind == "consent":
        run_input = _input(waits.ConsentDecision, given=approved, signer=signer, written=True)
    else:
        raise _other_wait(case_ref, wait)
    _resume(wait, _signed(db, case_ref, wait, run_input, actor, ("reason_note", notes.REASON, reason)))
    return wait


def respond(
    db: Database,
    case_ref: str,
    *,
    agency_id: str,
    status: str,
    reason: str = "",
    outcome: str = "",
    by: access.Principal,
) -> Wait:
    """Record, at the command line, an agency's answer to its referral in the step the case waits on,
    as taken by ``by`` (a phone call, say): the answer is recorded in their name.

    A step whose result the flow branches on takes its ``outcome`` with "completed". An agency
    answers its own referral only: naming the next agency when none is left is ``reroute``.
    """
    actor = _worker(db, case_ref, by, "respond")
    reason = _check_answer(status, reason)
    wait = current_wait(db, case_ref)
    if wait.kind != "answer":
        raise _other_wait(case_ref, wait)
    if agency_id not in wait.agencies:
        raise SteeringError(
            f"--agency: '{agency_id}'는 이 사례가 기다리는 기관이 아닙니다; 대기 중: {', '.join(wait.agencies)}"
        )
    with db.transaction() as session:
        referral = cases.find_referral(session, cases.find_case(session, case_ref), wait.step, agency_id)
        assert referral is not None  # the wait's agencies are its step's open referrals
        referral_id, outcomes = referral.id, list(referral.outcomes)
    _answer(db, case_ref, wait, agency_id, referral_id, outcomes, status, reason, outcome, actor)
    return wait


def answer_referral(
    db: Database,
    case_ref: str,
    referral_id: int,
    *,
    status: str,
    reason: str = "",
    outcome: str = "",
    by: str,
    settle_seconds: float = 30,
) -> Wait:
    """Answer one referral as ``by``: the agency's own link (``acts.link_actor``), or the deadline
    sweep; at its own wait only.

    The case must be waiting for an answer in the referral's step from the referral's agency;
    anything else it waits for (another step, a decision, the coordinator naming an agency) is
    not this answer's to give. The run input carries the referral's id, and the flow refuses it
    for any other referral, should the case have moved on meanwhile.
    """
    reason = _check_answer(status, reason)
    with db.transaction() as session:
        referral = session.get(Referral, referral_id)
        if referral is None or referral.case_id != cases.find_case(session, case_ref).id:
            raise SteeringError(f"연계 {referral_id}는 사례 {case_ref}의 연계가 아닙니다 (not a referral of this case)")
        step, agency_id, outcomes = referral.step, referral.agency_id, list(referral.outcomes)
    wait = current_wait(db, case_ref, settle_seconds=settle_seconds)
    if wait.kind != "answer" or wait.step != step or agency_id not in wait.agencies:
        raise SteeringError(
            f"사례 {case_ref}는 지금 이 연계({step} · {agency_id})의 답변을 기다리지 않습니다 "
            f"(the case is not waiting for this referral's answer now: {wait.key})"
        )
    _answer(db, case_ref, wait, agency_id, referral_id, outcomes, status, reason, outcome, by)
    return wait


def _check_answer(status: str, reason: str) -> str:
    """The answer's reason, checked with its status; a ``SteeringError`` naming the option otherwise."""
    if status not in cases.ANSWER_STATUSES:
        raise SteeringError(f"--status: {', '.join(cases.ANSWER_STATUSES)} 중 하나여야 합니다")
    reason = _reason(reason)
    if status in cases.REASON_REQUIRED and not reason.strip():
        raise SteeringError("--reason: 거절할 때는 사유를 입력해야 합니다 (a reason is required)")
    return reason


def _answer(
    db: Database,
    case_ref: str,
    wait: Wait,
    agency_id: str,
    referral_id: int,
    outcomes: list[str],
    status: str,
    reason: str,
    outcome: str,
    actor: str,
) -> None:
    """Resume the answer wait with the agency-answer form, for one referral, signed by ``actor``."""
    if outcome and outcome not in outcomes or status == "completed" and outcomes and not outcome:
        raise SteeringError(
            f"--outcome: 이 연계의 결과는 {', '.join(outcomes) or '없음'} 중 하나입니다 "
            "(completed와 함께; with completed)"
        )
    values: dict[str, Any] = {"agency_id": agency_id, "status": status, "referral_id": referral_id}
    if outcomes:
        values["outcome"] = outcome
    run_input = _input(waits.answer_form(wait.agencies, tuple(outcomes)), **values)
    _resume(wait, _signed(db, case_ref, wait, run_input, actor, ("reason_note", notes.REASON, reason)))


def reroute(db: Database, case_ref: str, *, agency_id: str, reason: str = "", by: access.Principal) -> Wait:
    """Name the agency a step goes to when none of its type is left, or skip the step (no agency).

    This is a decision of the case's centre, recorded as ``by``'s: it is asked for explicitly,
    never taken from an agency's answer.
    """
    actor = _worker(db, case_ref, by, "reroute")
    reason = _reason(reason)
    wait = current_wait(db, case_ref)
    if wait.kind != "reroute":
        raise _other_wait(case_ref, wait)
    run_input = _input(waits.RerouteDecision, agency_id=agency_id)
    if agency_id:
        with db.transaction() as session:
            agency = session.get(Agency, agency_id)
            if agency is None or not agency.active:
                raise SteeringError(
                    f"--agency: '{agency_id}'는 등록된 활동 기관이 아닙니다 (unknown or inactive agency)"
                )
    _resume(wait, _signed(db, case_ref, wait, run_input, actor, ("reason_note", notes.REASON, reason)))
    return wait


def schedule_conference(
    db: Database,
    case_ref: str,
    *,
    date: str,
    time_of_day: str,
    place: str,
    duration_minutes: int = 90,
    by: access.Principal,
) -> Wait:
    """Schedule the case conference the case waits for, or move it while it waits for the outcome.

    The input is checked here first, so a bad option changes nothing; the flow checks it again
    and records it, as it does for the Prefect form. Moving the conference answers the outcome
    form with "reschedule", then fills in the schedule form the case comes back to.
    """
    actor = _worker(db, case_ref, by, "conference schedule")
    place = _checked(place, "--place", PLACE_MAX, multiline=False)
    run_input = _input(waits.ConferenceSchedule, date=date, time=time_of_day, duration_minutes=duration_minutes)
    wait = current_wait(db, case_ref)
    with db.transaction() as session:
        days = business_calendar(session)
    starts_at = conferences.parse_start(date, time_of_day)
    conferences.check_schedule(starts_at, duration_minutes, place, now=SystemClock().now(), days=days)
    if wait.kind == "minutes":
        moving = _input(waits.ConferenceMinutes, proceed=False, reschedule=True)
        _resume(wait, _signed(db, case_ref, wait, moving, actor))
        wait = _next_wait(db, case_ref, wait)
    if wait.kind != "schedule":
        raise _other_wait(case_ref, wait)
    _resume(wait, _signed(db, case_ref, wait, run_input, actor, ("place_note", notes.PLACE, place)))
    return wait


def record_minutes(
    db: Database,
    case_ref: str,
    *,
    proceed: bool,
    roles: list[str],
    reason: str = "",
    minutes: str | None = None,
    by: access.Principal,
) -> Wait:
    """Record the conference's outcome: the minutes text into the registry, then the references into the flow.

    ``roles`` are "AGENCY_ID=SERVICE"; each becomes a handoff of the next stage. The minutes are
    written before the flow is resumed and never passed to it (they are about the person).
    """
    actor = _worker(db, case_ref, by, "conference minutes")
    parsed = parse_roles(roles)
    reason = _reason(reason)
    if not proceed and not reason.strip():
        raise SteeringError("--reason: 진행하지 않을 때는 사유를 입력해야 합니다 (a reason is required)")
    if not proceed and parsed:
        raise SteeringError("--role: 진행하지 않는 사례에는 역할을 줄 수 없습니다 (no roles when not proceeding)")
    if minutes is not None:
        if not minutes.strip():
            raise SteeringError("--file: 회의록이 비어 있습니다 (the minutes are empty)")
        minutes = clean_text(minutes, "minutes (--file)", MINUTES_MAX, multiline=True)
    roles_input = [{"agency_id": agency_id, "service": service} for agency_id, service in parsed]
    run_input = _input(waits.ConferenceMinutes, proceed=proceed, roles=roles_input)
    with db.transaction() as session:
        conferences.check_roles(session, parsed)
    wait = current_wait(db, case_ref)
    if wait.kind != "minutes":
        raise _other_wait(case_ref, wait)
    if minutes is not None:
        with db.transaction() as session:
            case = cases.find_case(session, case_ref)
            conferences.store_minutes(session, case, wait.step, minutes, by=actor)
    _resume(wait, _signed(db, case_ref, wait, run_input, actor, ("reason_note", notes.REASON, reason)))
    return wait


@dataclass(frozen=True)
class SceneSent:
    """The on-scene record as sent to the case, and the hold's dates it gives (the flow counts the same)."""

    wait: Wait
    scene: mental_health.Scene
    clock: mental_health.EmergencyClock | None


def record_emergency_scene(
    db: Database, case_ref: str, *, entry: mental_health.SceneEntry, reason: str = "", by: access.Principal
) -> SceneSent:
    """Record what happened at the scene of an emergency admission, in one go, as ``by``'s record.

    The request, the doctor's and the officer's consent, the escort and the admission happen in
    minutes, so they are one record, each with its time. It is checked here with the registry's
    rules first (``mental_health.check_scene``), so a bad option changes nothing; the flow checks it
    again and counts the hold from the recorded admission. ``reason`` (why a consent was not given,
    or the person not admitted) goes to a registry note.
    """
    actor = _worker(db, case_ref, by, "emergency scene")
    reason = _reason(reason)
    run_input = _input(waits.EmergencyScene, **asdict(entry))
    with db.transaction() as session:
        case = cases.find_case(session, case_ref)
        scene = mental_health.check_scene(session, case, entry, reason=reason, now=runtime.clock().now())
        clock = mental_health.hold_clock(business_calendar(session), scene)
    wait = current_wait(db, case_ref)
    if wait.kind != "scene":
        raise _other_wait(case_ref, wait)
    _resume(wait, _signed(db, case_ref, wait, run_input, actor, ("reason_note", notes.REASON, reason)))
    return SceneSent(wait, scene, clock)


def parse_roles(values: list[str]) -> list[tuple[str, str]]:
    """Role options ("AGENCY_ID=SERVICE") as pairs; the registry checks that both exist."""
    roles = []
    for value in values:
        agency_id, separator, service = value.partition("=")
        if not separator or not agency_id.strip() or not service.strip():
            raise SteeringError(f"--role: '{value}'는 기관ID=서비스 형식이어야 합니다 (AGENCY_ID=SERVICE)")
        roles.append((agency_id.strip(), service.strip()))
    return roles


def _next_wait(db: Database, case_ref: str, after: Wait, settle_seconds: float = 30) -> Wait:
    """The wait the case reaches after ``after`` was answered (the flow must run to get there)."""
    deadline = time.monotonic() + settle_seconds
    while True:
        wait = current_wait(db, case_ref, settle_seconds=settle_seconds)
        if wait.key != after.key or time.monotonic() > deadline:
            return wait
        time.sleep(0.5)
