"""The verbs flows are written in: hand a step off to agencies, ask a person, get consent.

These run in the flow (they suspend it), and call tasks for every side effect. Each wait has a
key built from the step and a counter, so replaying the flow after a resume meets the same keys
in the same order and receives the answers already given.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tasks import waits
from tasks.approvals import (
    kind_label,
    record_consent,
    record_coordinator_decision,
    record_decision,
    request_approval,
)
from tasks.case import enter_stage, publish_timeline
from tasks.referrals import (
    DEFAULT_TERMS,
    Handoff,
    Notice,
    Terms,
    notify_agency,
    open_referral,
    record_answer,
    refer_to_agency,
)
from tasks.runtime import settings
from tasks.waits import Form

T = TypeVar("T")

# The reason a skipped need is recorded with when the coordinator wrote none.
SKIPPED = "건너뜀 (skipped)"


@dataclass(frozen=True)
class Need:
    """One thing a step needs from one kind of agency, or from a named one.

    ``agency_id`` names the agency when people already chose it (a role taken at a case
    conference); a rejection still moves the need on to the next agency of ``agency_type``.
    """

    agency_type: str
    service: str
    agency_id: str | None = None


def hand_off(case_ref: str, step: str, needs: list[Need], *, due_months: int = 0) -> None:
    """Refer the step to one agency per need, in parallel, and wait until each is done.

    A rejection moves the need to the next agency of the same type; when none is left the
    coordinator names one or skips the need.
    """
    enter_stage(case_ref, step)
    # One task after another, never several at once: a process killed at a task boundary then
    # never interrupts another step halfway (tests/test_crash_every_step.py kills at each one).
    opened = [
        refer_to_agency(case_ref, step, n.agency_id, n.service)
        if n.agency_id
        else open_referral(case_ref, step, n.agency_type, n.service, due_months)
        for n in needs
    ]
    waiting: dict[str, Handoff] = {}
    for need, handoff in zip(needs, opened, strict=True):
        if handoff is None:
            handoff = _coordinator_names_agency(case_ref, step, need.service, need.agency_type)
        if handoff is not None:
            waiting[handoff.agency_id] = handoff
    _notify_all(case_ref, list(waiting.values()))
    publish_timeline(case_ref, step)
    _await_answers(case_ref, step, waiting, due_months)


def follow_up(case_ref: str, step: str, need: Need, *, months: int) -> None:
    """Plan a follow-up visit ``months`` ahead and wait for the agency to report it done."""
    hand_off(case_ref, step, [need], due_months=months)


def _notify_all(case_ref: str, handoffs: list[Handoff]) -> None:
    for handoff in handoffs:
        notify_agency(case_ref, handoff)


def _await_answers(case_ref: str, step: str, waiting: dict[str, Handoff], due_months: int) -> None:
    turn = 0
    while waiting:
        (agency_id, status), turn = waits.ask_until_valid(
            case_ref,
            waits.wait_key("answer", step),
            waits.answer_form(sorted(waiting)),
            f"**{case_ref}** · `{step}` 단계 기관 답변을 입력하세요 (agency answer).\n\n"
            f"대기 중: {', '.join(sorted(waiting))}",
            lambda answer, key: _recorded(case_ref, step, answer, key),
            first_turn=turn + 1,
        )
        if status == "completed":
            del waiting[agency_id]
        elif status in ("rejected", "failed"):  # declined, or timed out at the final deadline
            rejected = waiting.pop(agency_id)
            replacement = open_referral(case_ref, step, rejected.agency_type, rejected.service, due_months, turn)
            if replacement is None:
                replacement = _coordinator_names_agency(case_ref, step, rejected.service, rejected.agency_type)
            if replacement is not None:
                notify_agency(case_ref, replacement)
                waiting[replacement.agency_id] = replacement
            publish_timeline(case_ref, f"{step}-{turn}")


def _recorded(case_ref: str, step: str, answer: waits.AgencyAnswer, key: str) -> tuple[str, str] | waits.Again:
    """Record an agency's answer: (agency, the referral's status afterwards), or ask again if it was invalid."""
    outcome = getattr(answer, "outcome", "")  # only a step whose result the flow branches on asks for one
    status = record_answer(
        case_ref,
        step,
        answer.agency_id,
        answer.status,
        answer.reason_note,
        key,
        outcome,
        answer.referral_id,
        answer.act,
    )
    return waits.AGAIN if status == "invalid" else (answer.agency_id, status)


@dataclass(frozen=True)
class Outcome:
    """What one agency reported for a step: completed (with an outcome), rejected, or failed (timed out)."""

    status: str
    outcome: str = ""
    agency_id: str = ""


def await_outcome(
    case_ref: str,
    step: str,
    need: Need,
    *,
    outcomes: tuple[str, ...] = (),
    due: dt.date | None = None,
    legal_basis: str = "",
    notice: Notice | None = None,
) -> Outcome:
    """Refer a step to one agency and wait for what it reports; the flow decides what follows.

    Unlike ``hand_off`` nothing is rerouted: a decline, or a deadline that ran out (the deadline
    sweep answers "timed-out"), is returned for the flow's own branch. ``due`` fixes the due date
    (a legal clock) instead of the agency type's default; a date-time is a life-safety step's due
    time, its clock in hours on every day. ``notice`` is a written notice the law requires, which
    the agency's email carries for it to hand on.
    """
    enter_stage(case_ref, step)
    if isinstance(due, dt.datetime):
        terms = Terms(legal_basis=legal_basis, outcomes=outcomes, due_at=due.isoformat())
    else:
        terms = Terms(due.isoformat() if due else "", legal_basis, outcomes)
    handoff = (
        refer_to_agency(case_ref, step, need.agency_id, need.service, terms)
        if need.agency_id
        else open_referral(case_ref, step, need.agency_type, need.service, terms=terms)
    )
    if handoff is None:
        handoff = _coordinator_names_agency(case_ref, step, need.service, need.agency_type, terms)
    if handoff is None:
        return Outcome("skipped")
    notify_agency(case_ref, handoff, notice)
    publish_timeline(case_ref, step)
    agency_id = handoff.agency_id

    def reported(answer: waits.AgencyAnswer, key: str) -> Outcome | waits.Again:
        """What the agency reported, once it is final; accepted (still working) or invalid asks again."""
        recorded = _recorded(case_ref, step, answer, key)
        if isinstance(recorded, waits.Again) or recorded[1] not in ("completed", "rejected", "failed"):
            return waits.AGAIN
        status = recorded[1]
        return Outcome(status, getattr(answer, "outcome", "") if status == "completed" else "", agency_id)

    outcome, _turn = waits.ask_until_valid(
        case_ref,
        waits.wait_key("answer", step),
        waits.answer_form([agency_id], outcomes),
        f"**{case_ref}** · `{step}` 단계 기관 보고를 입력하세요 (agency report)."
        + (f"\n\n결과 (outcomes): {', '.join(outcomes)}" if outcomes else ""),
        reported,
    )
    return outcome


def _coordinator_names_agency(
    case_ref: str, step: str, service: str, agency_type: str, terms: Terms = DEFAULT_TERMS
) -> Handoff | None:
    """No agency of the type is left: the coordinator names another one, or skips the need.

    Each turn is its own request to the coordinator (the key of its wait); an agency that does
    not exist closes that request and asks again.
    """

    def named(choice: waits.RerouteDecision, key: str) -> Handoff | None | waits.Again:
        if not choice.agency_id:
            record_coordinator_decision(case_ref, key, False, SKIPPED, key, choice.reason_note, choice.act)
            return None
        handoff = refer_to_agency(case_ref, step, choice.agency_id, service, terms)
        if handoff is None:
            record_coordinator_decision(
                case_ref, key, False, f"unknown agency '{choice.agency_id}'", key, act=choice.act
            )
            return waits.AGAIN
        record_coordinator_decision(case_ref, key, True, "", key, choice.reason_note, choice.act)
        return handoff

    handoff, _turn = waits.ask_until_valid(
        case_ref,
        waits.wait_key("reroute", step, agency_type),
        waits.RerouteDecision,
        f"**{case_ref}** · `{step}`: 연계할 `{agency_type}` 기관이 더 없습니다. "
        "다른 기관 ID를 입력하거나 비워 두어 건너뛰세요 (name an agency or leave empty to skip). "
        f"명령줄: `yeongye reroute {case_ref}`",
        named,
        before=lambda key: _request_person(case_ref, key, "reroute", "coordinator"),
    )
    return handoff


def ask(case_ref: str, key: str, kind: str, approver_role: str = "supervisor", *, due_after: str = "") -> bool:
    """Ask the supervisor (or coordinator) to decide; True if approved.

    A decision without the name of who took it, or a rejection without a reason, is not a
    decision: the form is shown again. ``due_after`` (ISO date) counts the due date from that
    day, for a decision that cannot come earlier (a session held next month is confirmed after it).
    """
    approval_key = waits.wait_key("decision", key)
    enter_stage(case_ref, kind, approval_key)

    def decided(decision: waits.Decision, wait: str) -> bool | waits.Again:
        status = record_decision(case_ref, approval_key, decision.approved, decision.reason_note, wait, decision.act)
        return waits.AGAIN if status == "invalid" else status == "approved"

    return ask_person(
        case_ref,
        approval_key,
        kind,
        approver_role,
        waits.Decision,
        f"**{case_ref}** · {kind_label(kind, settings().language)}\n\n"
        f"명령줄: `yeongye approve {case_ref}` (반려할 때는 `--reject --reason`; a reason to reject).",
        decided,
        due_after=due_after,
    )


def ask_person(
    case_ref: str,
    approval_key: str,
    kind: str,
    role: str,
    form: type[Form],
    description: str,
    record: Callable[[Form, str], T | waits.Again],
    *,
    due_after: str = "",
) -> T:
    """Ask a person to fill in ``form`` for the request ``approval_key``, until ``record`` can use it.

    The request is recorded and its person emailed once; each turn after an invalid answer only
    waits again, at ``<approval_key>-<turn>``. ``due_after`` (ISO date) counts the due date from
    that day (see ``request_approval``).
    """
    result, _turn = waits.ask_until_valid(
        case_ref,
        approval_key,
        form,
        description,
        record,
        before=lambda _wait: _request_person(case_ref, approval_key, kind, role, due_after),
    )
    return result


def _request_person(case_ref: str, approval_key: str, kind: str, role: str, due_after: str = "") -> None:
    """Record that a person must decide, email them, and show it on the timeline (once per request)."""
    request_approval(case_ref, approval_key, kind, role, due_after)
    publish_timeline(case_ref, approval_key)


@dataclass(frozen=True)
class ConsentOutcome:
    given: bool
    signer: str


def obtain_consent(case_ref: str, attempt: int, agency_types: list[str], purpose: str) -> ConsentOutcome:
    """Ask the coordinator to record the resident's (or guardian's) written consent."""
    wait = waits.wait_key("consent", attempt)
    enter_stage(case_ref, "consent", wait)

    def recorded(answer: waits.ConsentDecision, key: str) -> ConsentOutcome | waits.Again:
        given = record_consent(
            case_ref, wait, answer.given, answer.signer, answer.written, agency_types, purpose, answer.act, key
        )
        return waits.AGAIN if given is None else ConsentOutcome(given=given, signer=answer.signer)

    consent, _turn = waits.ask_until_valid(
        case_ref,
        wait,
        waits.ConsentDecision,
        f"**{case_ref}** · 입주민 또는 보호의무자의 **서면 동의**를 기록하세요 "
        "(record written consent; a refusal is respected and never overridden).",
        recorded,
        unnumbered_first=True,
        before=lambda _wait: _request_person(case_ref, wait, "consent", "coordinator"),
    )
    return consent
