"""Waiting for people: the forms a suspended case shows, and the one way a flow waits and asks again.

Every wait suspends the deployed flow run (no process is held while a case waits). The pause key
names what the case waits for; ``yeongye approve`` / ``yeongye respond`` read it to resume the run
with the same input the Prefect UI form would send. The key format lives here and only here:
``wait_key`` builds it, ``kind_of`` and ``step_of`` read it.

Every question is asked the same way (``ask_until_valid``): wait, record the answer, and when the
answer cannot be used ask again at the next key. Bad input is audited and asked again; it never
fails the case. Text fields carry the rules of ``registry.text`` in their JSON schema, so
Prefect's server refuses a bad form before the flow sees it, and the flow checks them again.

No form carries a name either: every form has an ``act``, the number of the registry row
(``registry.acts``) in which steering signed the input for the person or link that gave it, and
the recording task takes the actor from there. An unsigned input is refused and asked again.

No form carries free text. Prefect keeps every flow-run input, readable through its API, and a
reason or a place is what a person wrote, often about the resident. Steering (the CLI, the answer
page) writes such text to a registry note first and sends the note's number (``reason_note``,
``place_note``); the recording task reads the text back from the registry (``registry.notes``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRunInput
from prefect.context import FlowRunContext
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, Field, ValidationError, create_model
from pydantic_core import ErrorDetails
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from registry import acts, cases
from registry.mental_health import SceneEntry
from registry.models import Case
from registry.text import ShortText
from tasks import runtime
from tasks.log import logger
from tasks.retry import handoff_task

# Pause keys become Prefect input keys, which accept only lowercase letters, digits and dashes.
_KEY_ALLOWED = re.compile(r"[^a-z0-9-]+")

WAIT_KINDS = ("answer", "decision", "consent", "reroute", "schedule", "minutes", "scene")


def wait_key(kind: str, *parts: str | int) -> str:
    """A pause key like ``answer-cleaning-2``: kind first, so steering can tell what to send."""
    assert kind in WAIT_KINDS
    raw = "-".join([kind, *(str(part) for part in parts)]).lower()
    return _KEY_ALLOWED.sub("-", raw).strip("-")


def kind_of(key: str) -> str:
    return key.split("-", 1)[0]


def request_of(key: str) -> str:
    """The approval request a decision's pause key asks about: ``decision-closure-1-2`` → ``decision-closure-1``.

    A decision is asked again (turn 2, 3 …) until it is valid; every turn decides the same request.
    """
    assert kind_of(key) == "decision"
    return key.rsplit("-", 1)[0]


def step_of(key: str) -> str:
    """The step a pause key belongs to, for the kinds whose key names one ("" for the others).

    An answer key is "answer-<step>-<turn>" (the agencies are those still open in that step); a
    conference key is "<schedule|minutes>-<step>-<round>-<turn>" (see ``tasks.conferences``).
    """
    kind = kind_of(key)
    if kind == "answer":
        return key.removeprefix("answer-").rsplit("-", 1)[0]
    if kind in ("schedule", "minutes"):
        return key.removeprefix(f"{kind}-").rsplit("-", 2)[0]
    return ""


def _note_field(title: str, required_when: str = "") -> Any:
    """A note number in place of free text: what the Prefect UI form asks for it, Korean first."""
    return Field(
        default=None,
        title=title,
        description=(
            (f"{required_when}. " if required_when else "")
            + "등록부 메모 번호: 명령줄·답변 링크는 글을 등록부에 쓰고 번호를 보냅니다. 글은 이 양식에 쓰지 마세요 "
            "(the number of a registry note; the CLI and the answer links write the text to the registry "
            "and send its number: never type the text into this form)"
        ),
    )


class Signed(RunInput):
    """A form whose input names its giver through ``act`` (see the module's docstring)."""

    act: int | None = Field(
        default=None,
        title="서명 번호 (act)",
        description=(
            "yeongye 명령과 답변 링크가 보냅니다. 이 화면에서는 답할 수 없습니다: 누가 답했는지 알 수 없기 때문입니다 "
            "(sent by the yeongye command and the answer links; this form cannot answer, as it names no one)"
        ),
    )


class Decision(Signed):
    approved: bool = Field(title="승인 (approve)", description="승인하면 체크, 반려하면 해제")
    reason_note: int | None = _note_field(
        "사유 메모 번호 (reason note)", "반려할 때는 반드시 입력 (required to reject)"
    )


class ConsentDecision(Signed):
    given: bool = Field(title="동의함 (consent given)", description="입주민 또는 보호의무자가 동의했는가")
    signer: Literal["resident", "guardian"] = Field(
        default="resident",
        title="서명자 (signer)",
        description="resident=본인, guardian=보호의무자(의사결정능력이 부족한 경우: 성년후견 연계)",
    )
    written: bool = Field(default=True, title="서면 동의 (written)", description="서면 동의서를 받았는가")
    reason_note: int | None = _note_field("사유 메모 번호 (reason note)", "거부 사유 등 (e.g. why it was refused)")


class RerouteDecision(Signed):
    """The coordinator names the next agency; recorded as the case coordinator's decision."""

    agency_id: ShortText = Field(
        default="",
        title="다음 기관 ID (next agency id)",
        description="의뢰할 기관의 ID. 비워 두면 이 연계를 건너뜁니다 (empty: skip this handoff)",
    )
    reason_note: int | None = _note_field("사유 메모 번호 (reason note)")


class ConferenceSchedule(Signed):
    """When and where the case conference meets; the flow checks it (future, business day)."""

    date: ShortText = Field(title="날짜 (date)", description="YYYY-MM-DD, 근무일 (a business day)")
    time: ShortText = Field(title="시작 시각 (start time)", description="HH:MM, 서울 시각 (Asia/Seoul)")
    # The place may be the resident's home: a note, like a reason.
    place_note: int | None = _note_field("장소 메모 번호 (place note)", "반드시 입력 (required)")
    duration_minutes: int = Field(default=90, title="회의 시간(분) (duration, minutes)")


class ConferenceRole(BaseModel):
    agency_id: ShortText = Field(title="기관 ID (agency id)")
    service: ShortText = Field(title="서비스 (service)", description="예: supplies-programs, mental-health")


class ConferenceMinutes(Signed):
    """The conference's outcome, by reference only: the minutes text goes to the registry, never here."""

    proceed: bool = Field(title="진행 (proceed)", description="사례를 계속 진행하면 체크, 진행하지 않으면 해제")
    roles: list[ConferenceRole] = Field(
        default_factory=list,
        title="기관별 역할 (roles)",
        description="회의에서 정한 역할: 다음 단계에서 이 기관들에 연계합니다 (the next stage's handoffs)",
    )
    reason_note: int | None = _note_field(
        "사유 메모 번호 (reason note)", "진행하지 않을 때는 반드시 입력 (required when not proceeding)"
    )
    reschedule: bool = Field(
        default=False,
        title="일정 변경 (reschedule)",
        description="회의를 옮기려면 체크: 새 일정을 다시 묻습니다 (asks for the new date again)",
    )


class EmergencyScene(Signed):
    """What happened at the scene of an emergency admission (정신건강복지법 §50①②), recorded in one go.

    It all happens in minutes: the finder asks for the admission with a doctor's and a police
    officer's consent, and the officer or a 119 crew takes the person to the hospital. Each time is
    when it happened (Seoul); an empty time means it did not happen. The hold runs from ``admitted_at``.
    """

    requested_at: ShortText = Field(
        title="응급입원 의뢰 시각 (request)",
        description="YYYY-MM-DD HH:MM, 서울 시각: 발견자가 의뢰한 때 (when the finder asked, Asia/Seoul)",
    )
    doctor_consented_at: ShortText = Field(
        default="", title="의사 동의 시각 (doctor's consent)", description="비워 두면 동의하지 않음 (empty: refused)"
    )
    police_agency_id: ShortText = Field(
        default="",
        title="동의한 경찰관의 소속 기관 ID (police agency id)",
        description="경찰 기관 ID (a police agency)",
    )
    police_consented_at: ShortText = Field(
        default="", title="경찰관 동의 시각 (officer's consent)", description="비워 두면 동의하지 않음 (empty: refused)"
    )
    escort: Literal["", "police", "fire-119"] = Field(
        default="", title="호송 (escort)", description="police=동의한 경찰관, fire-119=119 구급대 (§50②)"
    )
    escort_agency_id: ShortText = Field(
        default="",
        title="119 구급대 기관 ID (119 agency id)",
        description="비워 두면 이 구의 첫 119 구급대 (empty: the district's first 119 service)",
    )
    hospital_agency_id: ShortText = Field(default="", title="정신의료기관 ID (hospital agency id)")
    admitted_at: ShortText = Field(
        default="",
        title="입원 시각 (admission)",
        description="보호 기간(§50③)이 이때부터: 비워 두면 입원하지 않음 (the hold runs from it; empty: not admitted)",
    )
    reason_note: int | None = _note_field(
        "사유 메모 번호 (reason note)", "동의가 없었거나 입원하지 않았으면 반드시 입력 (required if it stopped)"
    )

    def entry(self) -> SceneEntry:
        """The record as typed, for the registry to check (``registry.mental_health.check_scene``)."""
        return SceneEntry(
            requested_at=self.requested_at,
            doctor_consented_at=self.doctor_consented_at,
            police_agency_id=self.police_agency_id,
            police_consented_at=self.police_consented_at,
            escort=self.escort,
            escort_agency_id=self.escort_agency_id,
            hospital_agency_id=self.hospital_agency_id,
            admitted_at=self.admitted_at,
        )


class AgencyAnswer(Signed):
    """An agency's answer, as the flow reads it; ``answer_form`` makes the form for each wait.

    The fields are declared for the type checker only: ``answer_form`` builds them per wait (a
    drop-down of the agencies, an optional outcome first), so the form stays exactly that.
    """

    if TYPE_CHECKING:
        agency_id: str
        status: Literal["accepted", "rejected", "completed", "timed-out"]
        reason_note: int | None
        referral_id: int | None


def answer_form(agency_ids: list[str], outcomes: tuple[str, ...] = ()) -> type[AgencyAnswer]:
    """The agency-answer form, with a drop-down of the agencies this step still waits for.

    A step whose result the flow branches on (``outcomes``, e.g. converted / discharged) also asks
    which outcome the agency reports when it answers "completed". An answer link sends the id of
    its referral, so that an answer meant for one referral is never taken for another.
    """
    agency_choice = Literal[tuple(agency_ids)]  # type: ignore[valid-type]
    fields: dict[str, Any] = {}  # (type, field) pairs; typed loosely, as the types are made at run time
    if outcomes:
        fields["outcome"] = (
            Literal[("", *outcomes)],
            Field(default="", title="결과 (outcome)", description="completed일 때 반드시 선택: " + ", ".join(outcomes)),
        )
    fields["agency_id"] = (agency_choice, Field(title="기관 (agency)", description="답변한 기관"))
    fields["status"] = (
        Literal["accepted", "rejected", "completed", "timed-out"],
        Field(
            title="답변 (answer)",
            description="accepted=수락, rejected=거절(사유 필수), completed=완료, timed-out=기한 초과(자동)",
        ),
    )
    fields["reason_note"] = (
        int | None,
        _note_field("사유·결과 메모 번호 (reason / outcome note)", "거절할 때는 반드시 입력 (required to reject)"),
    )
    fields["referral_id"] = (
        int | None,
        Field(
            default=None,
            title="연계 번호 (referral id)",
            description="답변 링크가 보냅니다; 여기서는 비워 두세요 (sent by answer links; leave empty)",
        ),
    )
    return create_model("AgencyAnswer", __base__=AgencyAnswer, **fields)


Form = TypeVar("Form", bound=RunInput)
T = TypeVar("T")
R = TypeVar("R")


def wait_for(form: type[Form], key: str, description: str) -> Form:
    """Suspend the case until someone fills in ``form``; on replay, return what they sent.

    A wait answered before is not asked of Prefect one by one (a rejected suspension and a read,
    two calls per earlier wait, growing with the case): every answer the run has is read once per
    execution (``_answered``) and the form made from it. Only a wait with no answer yet suspends.
    """
    answered = _answered().get(response_key(key))
    if answered is not None:
        return form.load_from_flow_run_input(answered)
    return suspend_flow_run(  # type: ignore[return-value]
        wait_for_input=form.with_initial_data(description=description),
        key=key,
    )


def response_key(pause_key: str) -> str:
    """Where Prefect keeps the answer to the wait ``pause_key``: the response key of the keyset of a
    Suspended state (``prefect.input.run_input.keyset_from_paused_state``). A Prefect internal,
    pinned by ``tests/test_prefect_internals.py``."""
    return f"{_SUSPENDED_PREFIX}{pause_key}-response"


_SUSPENDED_PREFIX = "suspended-"
_ANSWERS_READ_AT_MOST = 10_000  # inputs of one run: 2 or 3 per wait (schema, description, answer)


def _answered() -> dict[str, FlowRunInput]:
    """Every answered wait of the running flow run, by response key (none outside a flow run)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return {}
    return _answers_of(context.flow_run.id, context.flow_run.run_count)


@functools.lru_cache(maxsize=1)
def _answers_of(flow_run_id: UUID, run_count: int) -> dict[str, FlowRunInput]:
    """The answers of one execution (``run_count`` tells executions apart), read on the first wait it meets.

    An answer never changes once given, and a wait this execution reaches for the first time has
    none yet (the answer comes only after the run suspends, in the next execution), so the read
    stays true for the whole execution.
    """
    with get_client(sync_client=True) as client:
        inputs = client.filter_flow_run_input(
            flow_run_id=flow_run_id, key_prefix=_SUSPENDED_PREFIX, limit=_ANSWERS_READ_AT_MOST, exclude_keys=set()
        )
    return {i.key: i for i in inputs if i.key.endswith("-response")}


class Again(Enum):
    """What a record step returns when the answer could not be used: the question is asked again."""

    AGAIN = "again"


AGAIN = Again.AGAIN


def ask_until_valid(
    case_ref: str,
    base_key: str,
    form: type[Form],
    description: str,
    record: Callable[[Form, str], T | Again],
    *,
    first_turn: int = 1,
    unnumbered_first: bool = False,
    before: Callable[[str], object] | None = None,
) -> tuple[T, int]:
    """Wait for ``form`` and record it, asking again until ``record`` can use the answer.

    Returns what ``record`` made of the answer, and the turn it came at. Turn n waits at
    ``<base_key>-<n>``, so replaying the flow meets the same keys in the same order and receives
    the answers already given. A form Prefect stored that the model refuses now (sent before a
    rule existed, or caught only by the flow's own check) is audited and asked again like any
    invalid answer. ``before`` runs ahead of each wait, with its key (to request a decision and
    email who takes it); ``unnumbered_first`` keeps the bare ``base_key`` for the first turn, for
    a wait that was asked only once before asking again existed (consent).
    """
    turn = first_turn
    while True:
        key = base_key if unnumbered_first and turn == 1 else f"{base_key}-{turn}"
        if before is not None:
            before(key)
        try:
            answer = wait_for(form, key, description)
        except ValidationError as error:
            refuse_input(case_ref, key, [_problem(detail) for detail in error.errors()])
        else:
            result = record(answer, key)
            if not isinstance(result, Again):
                return result, turn
        turn += 1


def _problem(detail: ErrorDetails) -> str:
    """One refused field as "field: why", without the value (it may be what made it unusable)."""
    return f"{'.'.join(str(part) for part in detail['loc'])}: {detail['msg']}"


@handoff_task(name="refuse-input", task_run_name="{wait}-refused")
def refuse_input(case_ref: str, wait: str, problems: list[str]) -> str:
    """Audit a form the flow could not load; the case waits again at the next key."""
    with runtime.transaction() as session:
        case = cases.find_case(session, case_ref)
        cases.audit(session, case, "flow", "invalid-input", wait=wait, error="; ".join(problems))
    logger(case_ref, wait).warning("input-invalid", wait=wait)
    return wait


DATABASE_REFUSED = "데이터베이스가 값을 받아들이지 않았습니다 (the database refused a value)"


# Who gave an input no one signed, in the audit trail: unknown, never guessed.
UNSIGNED = "unsigned"


def record_or_refuse(case_ref: str, act: int | None, wait: str, write: Callable[[Session, Case, str], R]) -> R | None:
    """Run ``write`` in one transaction as the input's signer, or, when the input is bad, audit
    that instead and return None.

    ``act`` is the form's signature (``registry.acts``): ``write`` receives who signed it. Bad
    input is an unsigned one, a ``CaseError`` (a rule of the case, the message names the field)
    or a value the database refuses (PostgreSQL takes no NUL byte in text); either way nothing of
    it is kept and the caller asks again.
    """
    try:
        with runtime.transaction() as session:
            case = cases.find_case(session, case_ref)
            return write(session, case, acts.actor_of(session, case, act, wait))
    except (cases.CaseError, DataError) as error:
        why = str(error) if isinstance(error, cases.CaseError) else DATABASE_REFUSED
    with runtime.transaction() as session:
        case = cases.find_case(session, case_ref)
        try:
            actor = acts.actor_of(session, case, act, wait)
        except cases.CaseError:
            actor = UNSIGNED
        cases.audit(session, case, actor, "invalid-input", wait=wait, error=why)
    logger(case_ref, wait).warning("input-invalid", wait=wait)
    return None
