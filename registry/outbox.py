"""The email outbox: the only way yeongye sends mail, and the reason it sends each message once.

A message is enqueued under an idempotency key derived from (case, step, recipient); enqueueing
the same key again returns the stored message. Sending claims the row first (pending -> sending in
one conditional UPDATE), so two workers, a retry and a replay after resume can never both send it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from registry.models import Case, OutboxMessage

_MESSAGE_ID_UNSAFE = re.compile(r"[^a-z0-9.-]")

# A claim older than this is considered abandoned by a crashed sender and may be taken again.
STALE_CLAIM = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class Draft:
    to_addr: str
    subject: str
    body_text: str
    body_html: str
    reply_to: str | None = None
    # An iCalendar REQUEST sent along (a case-conference invitation), so clients offer to add it.
    calendar_ics: str | None = None


def idempotency_key(case_ref: str, step: str, recipient: str) -> str:
    return f"{case_ref}:{step}:{recipient}"


def enqueue(
    session: Session, case: Case, *, key: str, agency_id: str | None, draft: Draft, domain: str
) -> tuple[OutboxMessage, bool]:
    """Store the message under ``key``; returns (message, whether it was new)."""
    existing = session.scalar(select(OutboxMessage).where(OutboxMessage.idempotency_key == key))
    if existing:
        return existing, False
    earlier = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.case_id == case.id, OutboxMessage.to_addr == draft.to_addr)
        .order_by(OutboxMessage.id)
    ).all()
    message = OutboxMessage(
        idempotency_key=key,
        case_id=case.id,
        agency_id=agency_id,
        to_addr=draft.to_addr,
        subject=draft.subject,
        body_text=draft.body_text,
        body_html=draft.body_html,
        calendar_ics=draft.calendar_ics,
        message_id=f"<{_MESSAGE_ID_UNSAFE.sub('.', key.lower())}@{domain}>",
        reply_to=draft.reply_to,
        # One thread per case and recipient: answer the previous message, reference the first.
        in_reply_to=earlier[-1].message_id if earlier else None,
        thread_refs=" ".join(dict.fromkeys([earlier[0].message_id, earlier[-1].message_id])) if earlier else None,
    )
    session.add(message)
    session.flush()
    return message, True


def claim(session: Session, message_id: int, now: dt.datetime) -> bool:
    """Take the right to send; False if it was sent or another sender holds a fresh claim."""
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message_id,
            (OutboxMessage.status == "pending")
            | ((OutboxMessage.status == "sending") & (OutboxMessage.claimed_at < now - STALE_CLAIM)),
        )
        .values(status="sending", claimed_at=now, attempts=OutboxMessage.attempts + 1)
    )
    return result.rowcount == 1


def mark_sent(session: Session, message_id: int, now: dt.datetime) -> None:
    session.execute(
        update(OutboxMessage).where(OutboxMessage.id == message_id).values(status="sent", sent_at=now, last_error=None)
    )


def release(session: Session, message_id: int, error: str) -> None:
    """Give the claim back after a failed attempt so the next retry may send."""
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == "sending")
        .values(status="pending", claimed_at=None, last_error=error[:2000])
    )
