"""Delivering outbox messages over SMTP (aiosmtplib), claiming each first so it goes out once.

The guarantee: a message reaches the mail server at least once, always with the same
Message-ID; it can reach it twice only when the server accepted it and the sender never learnt
so (the ``250`` reply lost, or the sender killed between the reply and recording it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib

from registry import outbox
from registry.calendar import Clock
from registry.db import Database
from registry.models import Case, OutboxMessage
from tasks import runtime
from yeongye.settings import Settings


def _build(message: OutboxMessage, case_ref: str, sender: str, clock: Clock) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.to_addr
    email["Subject"] = message.subject
    email["Message-ID"] = message.message_id
    email["Date"] = format_datetime(clock.now())
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
    """One attempt to send the message now, from a flow's task; returns its status after the attempt.

    Never raises for the mail server: whatever is not sent ("pending" after a transient failure,
    "failed" after a refusal, "sending" while another sender holds it) is the relay's to finish,
    so an SMTP outage delays the email and never fails the flow.
    """
    return Sender(runtime.database(), runtime.settings(), runtime.clock()).deliver(outbox_id)


class Sender:
    """Sends outbox messages over SMTP: the one mail helper, used by flow tasks and the relay alike."""

    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        self.db, self.settings, self.clock = db, settings, clock

    def deliver(self, outbox_id: int) -> str:
        with self.db.transaction() as session:
            if not outbox.claim(session, outbox_id, self.clock.now()):
                return session.get(OutboxMessage, outbox_id).status  # type: ignore[union-attr]
            message = session.get(OutboxMessage, outbox_id)
            assert message is not None
            case_ref = session.get(Case, message.case_id).ref  # type: ignore[union-attr]
            email = _build(message, case_ref, self.settings.mail_from, self.clock)
        try:
            asyncio.run(self._send(email))
        except Exception as error:  # noqa: BLE001 - every failure is recorded on the message
            with self.db.transaction() as session:
                if is_permanent(error):
                    outbox.fail(session, outbox_id, _describe(error))
                else:
                    ceiling = dt.timedelta(seconds=self.settings.outbox_max_backoff)
                    outbox.defer(session, outbox_id, _describe(error), self.clock.now(), ceiling)
                return session.get(OutboxMessage, outbox_id).status  # type: ignore[union-attr]
        with self.db.transaction() as session:
            outbox.mark_sent(session, outbox_id, self.clock.now())
        return "sent"

    def deliver_due(self, limit: int = 100) -> dict[str, int]:
        """Send every message that is due (pending, retry time reached, or a stale claim); counts by status."""
        with self.db.transaction() as session:
            ids = outbox.due(session, self.clock.now(), limit)
        counts: dict[str, int] = {}
        for outbox_id in ids:
            status = self.deliver(outbox_id)
            counts[status] = counts.get(status, 0) + 1
        return counts

    async def _send(self, email: EmailMessage) -> None:
        settings = self.settings
        await aiosmtplib.send(
            email,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            start_tls=settings.smtp_starttls,
            timeout=settings.smtp_timeout,
        )


def is_permanent(error: BaseException) -> bool:
    """A 5xx reply (for the message or every recipient) means sending again will not help."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return all(refusal.code >= 500 for refusal in error.recipients)
    return isinstance(error, aiosmtplib.SMTPResponseException) and error.code >= 500


def _describe(error: BaseException) -> str:
    """The error class and the server's reply; about the transport, never the message's content."""
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return f"{type(error).__name__}: {error.code} {error.message}"
    return f"{type(error).__name__}: {error}"
