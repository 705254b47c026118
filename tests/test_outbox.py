"""The outbox sends each message once: across retries, repeated enqueueing, and an SMTP outage."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy import select

from registry import cases, outbox
from registry.calendar import SystemClock
from registry.db import Database
from registry.models import OutboxMessage
from tasks import mailer
from tests.conftest import every_backend
from yeongye.mailcapture import MailCapture, read_captured


def _enqueue(db: Database) -> int:
    with db.transaction() as session:
        case = cases.open_case(
            session, intervention="hoarding", complex_code="A", resident_ref="R-A-001", opened_at=SystemClock().now()
        )
        draft = outbox.Draft("cc1@example.org", "[연계 요청] 제목", "본문", "<p>본문</p>")
        key = outbox.idempotency_key(case.ref, "assessment", "gaon-cc-1")
        message, created = outbox.enqueue(session, case, key=key, agency_id="gaon-cc-1", draft=draft, domain="test")
        again, created_again = outbox.enqueue(session, case, key=key, agency_id="gaon-cc-1", draft=draft, domain="test")
        assert created and not created_again and again.id == message.id
        return message.id


@every_backend
def test_delivering_twice_sends_once(registry: Database, mail: MailCapture) -> None:
    message_id = _enqueue(registry)
    assert mailer.deliver(message_id) == "sent"
    assert mailer.deliver(message_id) == "sent"
    captured = read_captured(mail.mail_dir)
    assert len(captured) == 1
    assert captured[0].subject == "[연계 요청] 제목"
    with registry.transaction() as session:
        stored = session.scalar(select(OutboxMessage))
        assert stored is not None and (stored.status, stored.attempts) == ("sent", 1)


def test_smtp_outage_leaves_message_pending_then_sends_once(
    registry: Database, mail: MailCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    message_id = _enqueue(registry)
    monkeypatch.setenv("YEONGYE_SMTP_PORT", str(dead_port))
    with pytest.raises(Exception) as outage:
        mailer.deliver(message_id)
    from tasks.retry import is_transient

    assert is_transient(outage.value)
    with registry.transaction() as session:
        stored = session.get(OutboxMessage, message_id)
        assert stored is not None and stored.status == "pending" and stored.last_error
    monkeypatch.setenv("YEONGYE_SMTP_PORT", str(mail.port))
    assert mailer.deliver(message_id) == "sent"
    assert len(read_captured(mail.mail_dir)) == 1


def test_bad_input_is_not_retried() -> None:
    from tasks.retry import is_transient

    assert not is_transient(cases.CaseError("reason: required"))
    assert is_transient(ConnectionRefusedError())


@every_backend
def test_messages_of_one_case_to_one_recipient_form_one_thread(registry: Database, mail: MailCapture) -> None:
    with registry.transaction() as session:
        case = cases.open_case(
            session, intervention="hoarding", complex_code="B", resident_ref="R-B-001", opened_at=SystemClock().now()
        )
        ids = []
        for step, to in [
            ("assessment", "cc1@example.org"),
            ("conference", "cc1@example.org"),
            ("conference", "mhwc1@example.org"),
            ("monitoring", "cc1@example.org"),
        ]:
            draft = outbox.Draft(to, f"[연계 요청] {step}", "본문", "<p>본문</p>", reply_to="coord-b@example.org")
            message, _ = outbox.enqueue(
                session,
                case,
                key=outbox.idempotency_key(case.ref, step, to),
                agency_id=None,
                draft=draft,
                domain="test",
            )
            ids.append(message.id)
    for message_id in ids:
        mailer.deliver(message_id)
    first, second, other, third = read_captured(mail.mail_dir)
    assert all(m.headers["Reply-To"] == "coord-b@example.org" for m in (first, second, other, third))
    assert "In-Reply-To" not in first.headers and "In-Reply-To" not in other.headers
    assert second.headers["In-Reply-To"] == first.message_id
    assert third.headers["In-Reply-To"] == second.message_id
    assert third.headers["References"].split() == [first.message_id, second.message_id]
    assert len({first.message_id, second.message_id, other.message_id, third.message_id}) == 4
