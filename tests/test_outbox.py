"""The outbox sends each message once: across retries, repeated enqueueing, an SMTP outage of any
length, a sender killed mid-send, a permanent refusal and a lost reply (at most one duplicate)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select
from typer.testing import CliRunner

from registry import cases, outbox
from registry.calendar import FixedClock, SystemClock
from registry.db import Database
from registry.models import Agency, OutboxMessage
from tasks import mailer
from tasks.mailer import Sender
from tests.conftest import every_backend
from tests.driving import token_of
from yeongye.cli import app
from yeongye.mailcapture import MailCapture, _LoopbackController, _StoreHandler, read_captured
from yeongye.settings import get_settings


def _enqueue(db: Database) -> int:
    with db.transaction() as session:
        case = cases.open_case(
            session,
            intervention="hoarding",
            complex_code="A",
            resident_ref="R-A-001",
            opened_at=SystemClock().now(),
            by="coord-a",
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


def _dead_port() -> int:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _sender(db: Database, clock: FixedClock, port: int, timeout: float = 10.0) -> Sender:
    settings = get_settings().model_copy(update={"smtp_port": port, "smtp_timeout": timeout})
    return Sender(db, settings, clock)


@every_backend
def test_smtp_outage_delays_mail_without_failing_and_the_relay_sends_it_once(
    registry: Database, mail: MailCapture
) -> None:
    """The mail server down for five minutes: nothing raises, nothing is lost, nothing goes twice."""
    message_id = _enqueue(registry)
    clock = FixedClock(SystemClock().now())
    down = _sender(registry, clock, _dead_port())
    assert down.deliver(message_id) == "pending"  # a flow's one attempt: returns, does not raise
    for _ in range(30):  # the relay keeps looking every ten seconds while the server is down
        clock.advance(dt.timedelta(seconds=10))
        down.deliver_due()
    with registry.transaction() as session:
        stored = session.get(OutboxMessage, message_id)
        assert stored is not None and stored.status == "pending" and "SMTPConnectError" in (stored.last_error or "")
        assert outbox.due(session, clock.now()) == []  # backing off
        tries_while_down = stored.attempts
    assert 3 <= tries_while_down <= 8  # backoff: far fewer than the 30 looks
    up = _sender(registry, clock, mail.port)
    assert up.deliver_due() == {}  # not due yet: the backoff holds
    clock.advance(outbox.MAX_BACKOFF)
    assert up.deliver_due() == {"sent": 1}
    assert up.deliver_due() == {}
    assert len(read_captured(mail.mail_dir)) == 1


def test_a_sender_killed_after_its_claim_loses_it_and_the_relay_sends_the_message(
    registry: Database, mail: MailCapture
) -> None:
    message_id = _enqueue(registry)
    clock = FixedClock(SystemClock().now())
    with registry.transaction() as session:
        assert outbox.claim(session, message_id, clock.now())  # ... and the sender is killed here
    relay = _sender(registry, clock, mail.port)
    assert relay.deliver_due() == {}  # a fresh claim is respected
    clock.advance(outbox.STALE_CLAIM + dt.timedelta(seconds=1))
    assert relay.deliver_due() == {"sent": 1}
    assert len(read_captured(mail.mail_dir)) == 1


class _Refusing(_StoreHandler):
    """A mail server that has no mailbox for one address (550) and drops the reply after DATA for another."""

    def __init__(self, mail_dir: Path, refused: str, slow: str, delay: float) -> None:
        super().__init__(mail_dir)
        self.refused, self.slow, self.delay = refused, slow, delay

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address == self.refused:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        reply = await super().handle_DATA(server, session, envelope)
        if self.slow in envelope.rcpt_tos:
            await asyncio.sleep(self.delay)  # stored, but the client gives up before the 250 arrives
        return reply


@pytest.fixture
def refusing(tmp_path: Path) -> Iterator[tuple[_LoopbackController, Path]]:
    mail_dir = tmp_path / "refusing"
    controller = _LoopbackController(
        _Refusing(mail_dir, refused="cc1@example.org", slow="slow@example.org", delay=3),
        hostname="127.0.0.1",
        port=0,
    )
    controller.start()
    try:
        yield controller, mail_dir
    finally:
        controller.stop()


def test_a_permanent_refusal_is_failed_listed_and_retried_to_the_corrected_address(
    registry: Database, refusing: tuple[_LoopbackController, Path]
) -> None:
    controller, mail_dir = refusing
    message_id = _enqueue(registry)  # to gaon-cc-1 at cc1@example.org, which the server refuses
    clock = FixedClock(SystemClock().now())
    sender = _sender(registry, clock, controller.port)
    assert sender.deliver(message_id) == "failed"
    clock.advance(outbox.MAX_BACKOFF * 10)
    assert sender.deliver_due() == {}  # a failed message waits for a person, not for a timer
    with registry.transaction() as session:
        stored = session.get(OutboxMessage, message_id)
        assert stored is not None and stored.status == "failed" and "550" in (stored.last_error or "")
        session.get(Agency, "gaon-cc-1").email = "cc1-new@example.org"  # type: ignore[union-attr]
        retried = outbox.retry(session, message_id, clock.now())
        assert retried.to_addr == "cc1-new@example.org"
    assert sender.deliver_due() == {"sent": 1}
    (captured,) = read_captured(mail_dir)
    assert captured.to == ["cc1-new@example.org"]


def test_the_outbox_commands_list_refused_mail_and_queue_it_again(
    registry: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    message_id = _enqueue(registry)
    with registry.transaction() as session:
        assert outbox.claim(session, message_id, SystemClock().now())
        outbox.fail(session, message_id, "SMTPRecipientsRefused: 550 5.1.1 mailbox unavailable")
    runner = CliRunner()
    # Another centre's coordinator neither sees the case's mail nor sends it again.
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-d"))
    assert json.loads(runner.invoke(app, ["outbox", "--json"]).output) == []
    foreign = runner.invoke(app, ["outbox", "retry", str(message_id)])
    assert foreign.exit_code == 2 and "소관이 아닙니다" in foreign.output, foreign.output
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-a"))  # the case's coordinator
    listed = runner.invoke(app, ["outbox", "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert (row["id"], row["status"], row["agency"]) == (message_id, "failed", "gaon-cc-1") and "550" in row[
        "last_error"
    ]
    assert "yeongye outbox retry" in runner.invoke(app, ["overdue"]).output
    shown = runner.invoke(app, ["case", row["case"]])
    assert "실패 (failed)" in shown.output and f"outbox retry {message_id}" in shown.output

    assert runner.invoke(app, ["outbox", "retry", str(message_id)]).exit_code == 0
    assert json.loads(runner.invoke(app, ["outbox", "--json"]).output)[0]["status"] == "pending"
    again = runner.invoke(app, ["outbox", "retry", str(message_id)])
    assert again.exit_code == 2 and "실패 상태가 아닙니다" in again.output  # only failed mail is retried
    assert runner.invoke(app, ["outbox", "--status", "lost"]).exit_code == 2


def test_a_lost_reply_after_data_gives_at_most_one_duplicate_with_the_same_message_id(
    registry: Database, refusing: tuple[_LoopbackController, Path]
) -> None:
    controller, mail_dir = refusing
    with registry.transaction() as session:
        case = cases.open_case(
            session,
            intervention="hoarding",
            complex_code="A",
            resident_ref="R-A-001",
            opened_at=SystemClock().now(),
            by="coord-a",
        )
        message, _ = outbox.enqueue(
            session,
            case,
            key=outbox.idempotency_key(case.ref, "assessment", "slow"),
            agency_id=None,
            draft=outbox.Draft("slow@example.org", "제목", "본문", "<p>본문</p>"),
            domain="test",
        )
        message_id = message.id
    clock = FixedClock(SystemClock().now())
    sender = _sender(registry, clock, controller.port, timeout=1)
    assert sender.deliver(message_id) == "pending"  # the 250 never came in time
    clock.advance(outbox.MAX_BACKOFF)
    fast = _sender(registry, clock, controller.port, timeout=10)
    assert fast.deliver_due() == {"sent": 1}
    assert fast.deliver_due() == {}
    copies = read_captured(mail_dir)
    assert len(copies) == 2 and copies[0].message_id == copies[1].message_id


def test_bad_input_is_not_retried() -> None:
    from tasks.retry import is_transient

    assert not is_transient(cases.CaseError("reason: required"))
    assert is_transient(ConnectionRefusedError())


@every_backend
def test_messages_of_one_case_to_one_recipient_form_one_thread(registry: Database, mail: MailCapture) -> None:
    with registry.transaction() as session:
        case = cases.open_case(
            session,
            intervention="hoarding",
            complex_code="B",
            resident_ref="R-B-001",
            opened_at=SystemClock().now(),
            by="coord-b",
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
