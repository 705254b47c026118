"""The email outbox: the only way yeongye sends mail, and the reason it sends each message once.

A message is enqueued under an idempotency key derived from (case, step, recipient); enqueueing
the same key again returns the stored message. Sending claims the row first (pending -> sending in
one conditional UPDATE), so two workers, a retry and a replay after resume can never both send it.
A sender that dies holding a claim loses it after ``STALE_CLAIM``; a transient failure puts the
message back with a backoff; a permanent refusal parks it as ``failed``. The relay
(``yeongye.background``) takes whatever is due, so an outage of any length only delays mail.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, select, update
from sqlalchemy.orm import Session

from registry.models import Agency, Case, OutboxMessage, Staff

_MESSAGE_ID_UNSAFE = re.compile(r"[^a-z0-9.-]")

# A claim older than this is considered abandoned by a crashed sender and may be taken again; it
# is well above the SMTP timeout, so a live sender never loses its claim mid-send.
STALE_CLAIM = dt.timedelta(minutes=2)
FIRST_BACKOFF = dt.timedelta(seconds=5)
MAX_BACKOFF = dt.timedelta(minutes=5)


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
    """Take the right to send; False if it was sent, failed, is not due yet or another sender holds a fresh claim.

    A claim older than ``STALE_CLAIM`` belongs to a sender that died between claiming and
    recording the result (kill -9, a lost connection): it may be taken again.
    """
    result = cast(
        CursorResult[Any],
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, _takeable(now))
            .values(status="sending", claimed_at=now, attempts=OutboxMessage.attempts + 1)
        ),
    )
    return result.rowcount == 1


def _takeable(now: dt.datetime) -> ColumnElement[bool]:
    due = (OutboxMessage.next_attempt_at.is_(None)) | (OutboxMessage.next_attempt_at <= now)
    return ((OutboxMessage.status == "pending") & due) | (
        (OutboxMessage.status == "sending") & (OutboxMessage.claimed_at < now - STALE_CLAIM)
    )


def due(session: Session, now: dt.datetime, limit: int = 100) -> list[int]:
    """Messages a relay may take now, oldest first."""
    return list(session.scalars(select(OutboxMessage.id).where(_takeable(now)).order_by(OutboxMessage.id).limit(limit)))


def mark_sent(session: Session, message_id: int, now: dt.datetime) -> None:
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(status="sent", sent_at=now, last_error=None, next_attempt_at=None)
    )


def backoff(attempts: int, ceiling: dt.timedelta = MAX_BACKOFF) -> dt.timedelta:
    """Wait before the next attempt: 5 s doubling per attempt, at most ``ceiling``."""
    return min(FIRST_BACKOFF * 2 ** max(attempts - 1, 0), ceiling)


def defer(session: Session, message_id: int, error: str, now: dt.datetime, ceiling: dt.timedelta = MAX_BACKOFF) -> None:
    """Give the claim back after a transient failure; the relay tries again after a backoff."""
    message = session.get(OutboxMessage, message_id)
    if message is None or message.status != "sending":
        return
    message.status = "pending"
    message.claimed_at = None
    message.last_error = error[:2000]
    message.next_attempt_at = now + backoff(message.attempts, ceiling)


def fail(session: Session, message_id: int, error: str) -> None:
    """The mail server refused the message for good (5xx): park it until someone retries it."""
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == "sending")
        .values(status="failed", claimed_at=None, last_error=error[:2000], next_attempt_at=None)
    )


def retry(session: Session, message_id: int, now: dt.datetime) -> OutboxMessage:
    """Send a failed message again, to the recipient's address as the registry has it now.

    The address is read again because the usual reason for a permanent refusal is a wrong
    address, corrected in the registry before the retry.
    """
    message = session.get(OutboxMessage, message_id)
    if message is None:
        raise OutboxError(f"outbox: 메시지 {message_id}가 없습니다 (no such message)")
    if message.status != "failed":
        raise OutboxError(
            f"outbox: 메시지 {message_id}는 실패 상태가 아닙니다: {message.status} (only failed messages are retried)"
        )
    current = _current_address(session, message)
    if current:
        message.to_addr = current
    message.status, message.next_attempt_at, message.claimed_at = "pending", now, None
    return message


def _current_address(session: Session, message: OutboxMessage) -> str | None:
    if message.agency_id:
        agency = session.get(Agency, message.agency_id)
        return agency.email if agency else None
    recipient = message.idempotency_key.rsplit(":", 1)[-1]
    staff = session.get(Staff, recipient)
    return staff.email if staff else None


UNSENT = ("pending", "sending", "failed")


def listing(session: Session, status: str | None = None) -> list[dict[str, Any]]:
    """Messages of one status, or every message not sent yet, oldest first, with their case."""
    wanted = [status] if status else list(UNSENT)
    rows = session.execute(
        select(OutboxMessage, Case.ref)
        .join(Case, Case.id == OutboxMessage.case_id)
        .where(OutboxMessage.status.in_(wanted))
        .order_by(OutboxMessage.id)
    ).all()
    return [
        {
            "id": message.id,
            "case": ref,
            "to": message.to_addr,
            "agency": message.agency_id,
            "subject": message.subject,
            "status": message.status,
            "attempts": message.attempts,
            "last_error": message.last_error,
            "next_attempt_at": message.next_attempt_at,
        }
        for message, ref in rows
    ]


class OutboxError(ValueError):
    """An outbox command cannot be done; the message says why, Korean first."""
