"""Waiting for people: the forms a suspended case shows, and the one way a flow waits.

Every wait suspends the deployed flow run (no process is held while a case waits). The pause key
names what the case waits for; ``yeongye approve`` / ``yeongye respond`` read it to resume the run
with the same input the Prefect UI form would send.
"""

from __future__ import annotations

import re
from typing import Literal, TypeVar

from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, Field, create_model

# Pause keys become Prefect input keys, which accept only lowercase letters, digits and dashes.
_KEY_ALLOWED = re.compile(r"[^a-z0-9-]+")

WAIT_KINDS = ("answer", "decision", "consent", "reroute", "schedule", "minutes")


def wait_key(kind: str, *parts: str | int) -> str:
    """A pause key like ``answer-cleaning-2``: kind first, so steering can tell what to send."""
    assert kind in WAIT_KINDS
    raw = "-".join([kind, *(str(part) for part in parts)]).lower()
    return _KEY_ALLOWED.sub("-", raw).strip("-")


def kind_of(key: str) -> str:
    return key.split("-", 1)[0]


class Decision(RunInput):
    approved: bool = Field(title="승인 (approve)", description="승인하면 체크, 반려하면 해제")
    reason: str = Field(default="", title="사유 (reason)", description="반려할 때는 반드시 입력")
    decided_by: str = Field(default="", title="결정자 (decided by)", description="직원 ID")


class ConsentDecision(RunInput):
    given: bool = Field(title="동의함 (consent given)", description="입주민 또는 보호의무자가 동의했는가")
    signer: Literal["resident", "guardian"] = Field(
        default="resident",
        title="서명자 (signer)",
        description="resident=본인, guardian=보호의무자(의사결정능력이 부족한 경우: 성년후견 연계)",
    )
    written: bool = Field(default=True, title="서면 동의 (written)", description="서면 동의서를 받았는가")
    reason: str = Field(default="", title="사유 (reason)", description="거부 사유 등")


class RerouteDecision(RunInput):
    agency_id: str = Field(
        default="",
        title="다음 기관 ID (next agency id)",
        description="의뢰할 기관의 ID. 비워 두면 이 연계를 건너뜁니다 (empty: skip this handoff)",
    )
    reason: str = Field(default="", title="사유 (reason)")


class ConferenceSchedule(RunInput):
    """When and where the case conference meets; the flow checks it (future, business day)."""

    date: str = Field(title="날짜 (date)", description="YYYY-MM-DD, 근무일 (a business day)")
    time: str = Field(title="시작 시각 (start time)", description="HH:MM, 서울 시각 (Asia/Seoul)")
    place: str = Field(title="장소 (place)", description="회의 장소, 예: 가온종합사회복지관 3층 회의실")
    duration_minutes: int = Field(default=90, title="회의 시간(분) (duration, minutes)")


class ConferenceRole(BaseModel):
    agency_id: str = Field(title="기관 ID (agency id)")
    service: str = Field(title="서비스 (service)", description="예: supplies-programs, mental-health")


class ConferenceMinutes(RunInput):
    """The conference's outcome, by reference only: the minutes text goes to the registry, never here."""

    proceed: bool = Field(title="진행 (proceed)", description="사례를 계속 진행하면 체크, 진행하지 않으면 해제")
    roles: list[ConferenceRole] = Field(
        default_factory=list,
        title="기관별 역할 (roles)",
        description="회의에서 정한 역할: 다음 단계에서 이 기관들에 연계합니다 (the next stage's handoffs)",
    )
    reason: str = Field(default="", title="사유 (reason)", description="진행하지 않을 때는 반드시 입력")
    reschedule: bool = Field(
        default=False,
        title="일정 변경 (reschedule)",
        description="회의를 옮기려면 체크: 새 일정을 다시 묻습니다 (asks for the new date again)",
    )


def answer_form(agency_ids: list[str], outcomes: tuple[str, ...] = ()) -> type[RunInput]:
    """The agency-answer form, with a drop-down of the agencies this step still waits for.

    A step whose result the flow branches on (``outcomes``, e.g. converted / discharged) also asks
    which outcome the agency reports when it answers "completed".
    """
    agency_choice = Literal[tuple(agency_ids)]  # type: ignore[valid-type]
    extra = {}
    if outcomes:
        extra["outcome"] = (
            Literal[("", *outcomes)],  # type: ignore[valid-type]
            Field(default="", title="결과 (outcome)", description="completed일 때 반드시 선택: " + ", ".join(outcomes)),
        )
    return create_model(  # type: ignore[call-overload, no-any-return]
        "AgencyAnswer",
        __base__=RunInput,
        **extra,
        agency_id=(agency_choice, Field(title="기관 (agency)", description="답변한 기관")),
        status=(
            Literal["accepted", "rejected", "completed", "timed-out"],
            Field(
                title="답변 (answer)",
                description="accepted=수락, rejected=거절(사유 필수), completed=완료, timed-out=기한 초과(자동)",
            ),
        ),
        reason=(str, Field(default="", title="사유·결과 (reason / outcome)")),
    )


Form = TypeVar("Form", bound=RunInput)


def wait_for(form: type[Form], key: str, description: str) -> Form:
    """Suspend the case until someone fills in ``form``; on replay, return what they sent."""
    return suspend_flow_run(  # type: ignore[return-value]
        wait_for_input=form.with_initial_data(description=description),
        key=key,
    )
