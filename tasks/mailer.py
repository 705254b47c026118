"""Delivering one outbox message over SMTP (aiosmtplib), claiming it first so it goes out once."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib

from registry import outbox
from registry.models import Case, OutboxMessage
from tasks import runtime


def _build(message: OutboxMessage, case_ref: str, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.to_addr
    email["Subject"] = message.subject
    email["Message-ID"] = message.message_id
    email["Date"] = format_datetime(runtime.clock().now())
    if message.reply_to:
        email["Reply-To"] = message.reply_to
    if message.in_reply_to:
        email["In-Reply-To"] = message.in_reply_to
        email["References"] = message.thread_refs or message.in_reply_to
    email["X-Yeongye-Case"] = case_ref
    email["X-Yeongye-Key"] = message.idempotency_key
    email.set_content(message.body_text)
    email.add_alternative(message.body_html, subtype="html")
    if message.calendar_ics:
        # A third alternative, as calendar clients expect for an invitation (RFC 6047). Bytes keep
        # the CRLF line ends iCalendar requires; text parts would have them normalised.
        email.add_alternative(
            message.calendar_ics.encode("utf-8"),
            maintype="text",
            subtype="calendar",
            params={"charset": "utf-8", "method": "REQUEST", "name": "invite.ics"},
        )
    return email


def deliver(outbox_id: int) -> str:
    """Send the message unless it is already sent; returns its final status."""
    settings = runtime.settings()
    now = runtime.clock().now()
    with runtime.transaction() as session:
        if not outbox.claim(session, outbox_id, now):
            return session.get(OutboxMessage, outbox_id).status  # type: ignore[union-attr]
        message = session.get(OutboxMessage, outbox_id)
        assert message is not None
        case_ref = session.get(Case, message.case_id).ref  # type: ignore[union-attr]
        email = _build(message, case_ref, settings.mail_from)
    try:
        asyncio.run(
            aiosmtplib.send(
                email,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=settings.smtp_password,
                start_tls=settings.smtp_starttls,
                timeout=30,
            )
        )
    except Exception as error:
        with runtime.transaction() as session:
            outbox.release(session, outbox_id, repr(error))
        raise
    with runtime.transaction() as session:
        outbox.mark_sent(session, outbox_id, runtime.clock().now())
    return "sent"
