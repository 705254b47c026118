"""Who gave an input to a waiting case, recorded before the input reaches the flow.

The forms Prefect keeps carry an act's number, never a name: steering signs each input in the
name of the authenticated person (or the agency's own link) just before resuming the case, and
the flow records the answer, decision or choice as that actor. An input without a valid act, such
as one typed into Prefect's own UI, is refused like any invalid answer and asked again.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from registry.cases import CaseError
from registry.models import Act, Case

LINK_PREFIX = "link:"


def link_actor(referral_id: int) -> str:
    """How an agency's answer link is named as an actor: its referral, which its token carries."""
    return f"{LINK_PREFIX}{referral_id}"


def sign(session: Session, case: Case, wait_key: str, actor: str, at: dt.datetime | None = None) -> int:
    """Record that ``actor`` gives the input for ``wait_key`` of ``case``; the form carries the returned id."""
    act = Act(case_id=case.id, wait_key=wait_key, actor=actor, at=at or dt.datetime.now(dt.UTC))
    session.add(act)
    session.flush()
    return act.id


def actor_of(session: Session, case: Case, act_id: int | None, wait_key: str) -> str:
    """Who signed the input given at ``wait_key``; a ``CaseError`` naming the field when no one did."""
    act = session.get(Act, act_id) if act_id is not None else None
    if act is None or act.case_id != case.id or act.wait_key != wait_key:
        raise CaseError(
            "act: 서명되지 않은 입력입니다; yeongye 명령이나 기관 답변 링크로 답하십시오 "
            "(an unsigned input: answer with the yeongye command or the agency's link, not Prefect's form)"
        )
    return act.actor
