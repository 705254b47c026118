"""A loopback SMTP server that keeps every message it receives, and a reader for what it kept.

Why: locally and in tests nobody should receive real mail, yet caseworkers and tests still need
to see exactly what would have gone to each agency (Korean subjects and bodies included). The
server stores each message as an ``.eml`` file; any mail client can open it, and
``read_captured`` turns the directory back into Python objects for tests and the CLI.

Each file holds the message bytes exactly as the client sent them after ``DATA``. Two trace
headers are put in front of them, the way a real MTA does on final delivery, so the SMTP envelope
is not lost (Bcc recipients appear nowhere else):

* ``Return-Path: <sender>``: the ``MAIL FROM`` address (RFC 5321 section 4.4);
* ``X-Envelope-To: a@x, b@y``: every ``RCPT TO`` address.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger(__name__)

# Sorting file names must give arrival order, so the timestamp is fixed-width and comes first.
_STAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"
ENVELOPE_TO_HEADER = "X-Envelope-To"


def _utf8_header_value(value: str) -> bytes:
    """Encode a trace-header value; SMTPUTF8 addresses may contain Korean, and CR/LF must not pass."""
    return value.replace("\r", " ").replace("\n", " ").encode("utf-8")


class _StoreHandler:
    """aiosmtpd handler: write every accepted message to ``mail_dir`` as one ``.eml`` file."""

    def __init__(self, mail_dir: Path) -> None:
        self.mail_dir = mail_dir
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def _next_path(self) -> Path:
        # The lock keeps timestamp and counter in the same order even if two sessions finish at once.
        with self._lock:
            stamp = datetime.now(UTC).strftime(_STAMP_FORMAT)
            return self.mail_dir / f"{stamp}-{next(self._counter):06d}.eml"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content
        if raw is None:  # cannot happen with decode_data=False; keep the type checker honest
            raw = envelope.content if isinstance(envelope.content, bytes) else b""
        trace = (
            b"Return-Path: <"
            + _utf8_header_value(envelope.mail_from or "")
            + b">\r\n"
            + ENVELOPE_TO_HEADER.encode("ascii")
            + b": "
            + _utf8_header_value(", ".join(envelope.rcpt_tos))
            + b"\r\n"
        )
        path = self._next_path()
        tmp = path.with_suffix(".eml.part")
        try:
            self.mail_dir.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(trace + raw)
            # Rename last so a reader never sees half a message.
            os.replace(tmp, path)
        except OSError:
            log.exception("메일 저장 실패 (could not store captured mail) %s", path)
            return "451 Requested action aborted: local error in processing"
        log.info("메일 수신 (captured mail) %s -> %s: %s", envelope.mail_from, envelope.rcpt_tos, path.name)
        return "250 Message accepted for delivery"


class _LoopbackController(Controller):
    """A Controller that can bind port 0 and report the port the OS picked.

    aiosmtpd 1.4 connects to ``self.port`` right after binding to trigger the SMTP greeting, which
    fails for port 0; reading the bound socket back before that fixes it without a bind race.
    """

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        create = super()._create_server()

        async def bind() -> asyncio.AbstractServer:
            server = await create
            # aiosmtpd types the server as AbstractServer; the loop's create_server returns one with sockets.
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            return server

        return bind()


class MailCapture:
    """SMTP server on 127.0.0.1 that stores every received message in ``mail_dir``.

    It runs its own event loop in a background thread (aiosmtpd's Controller), so it can live
    inside the synchronous ``yeongye up`` process or a test. Accepts SMTPUTF8 and 8BITMIME, so
    messages with Korean headers or raw UTF-8 bodies arrive unchanged.
    """

    def __init__(self, mail_dir: Path, port: int = 0, *, hostname: str = "127.0.0.1") -> None:
        self.mail_dir = Path(mail_dir)
        self.hostname = hostname
        self._requested_port = port
        self._handler = _StoreHandler(self.mail_dir)
        self._controller: _LoopbackController | None = None

    @property
    def port(self) -> int:
        """The port actually listened on (the one the OS chose when 0 was asked for)."""
        if self._controller is None:
            return self._requested_port
        return int(self._controller.port)

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        """Bind and start serving; raises OSError if the port is taken."""
        if self._controller is not None:
            return
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        controller = _LoopbackController(
            self._handler,
            hostname=self.hostname,
            port=self._requested_port,
            enable_SMTPUTF8=True,
            decode_data=False,  # keep raw bytes: 8BITMIME bodies must not be re-encoded
            ident="yeongye mail capture",
        )
        try:
            controller.start()
        except Exception:
            # A failed bind leaves the loop thread's loop half set up; make sure nothing lingers.
            controller.stop(no_assert=True)
            raise
        self._controller = controller
        log.info("메일 캡처 서버 시작 (mail capture listening) %s:%s -> %s", self.hostname, self.port, self.mail_dir)

    def stop(self) -> None:
        """Stop serving; idempotent."""
        controller, self._controller = self._controller, None
        if controller is not None:
            self._requested_port = int(controller.port)
            controller.stop()
            log.info("메일 캡처 서버 중지 (mail capture stopped)")

    def __enter__(self) -> MailCapture:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class CapturedMail:
    """One captured message, decoded for reading and asserting on."""

    received_at: datetime
    mail_from: str
    to: list[str]
    subject: str
    message_id: str
    headers: dict[str, str]
    text: str
    html: str
    path: Path


def _received_at(path: Path) -> datetime:
    """Arrival time from the file name (exact, survives copying); the mtime if the name is foreign."""
    try:
        stamp = path.name.split("-", 1)[0]
        return datetime.strptime(stamp, _STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def _addresses(message: EmailMessage, *names: str) -> list[str]:
    values: list[str] = []
    for name in names:
        values.extend(str(v) for v in message.get_all(name, []))
    return [addr for _, addr in getaddresses(values) if addr]


def _body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_type() != f"text/{subtype}":
        return ""
    content: Any = part.get_content()
    return content if isinstance(content, str) else ""


def parse_captured(path: Path) -> CapturedMail:
    """Parse one stored ``.eml`` file."""
    with path.open("rb") as fh:
        message = BytesParser(policy=policy.default).parse(fh)
    assert isinstance(message, EmailMessage)

    headers: dict[str, str] = {}
    for name, value in message.items():
        # Repeated headers (Received, ...) are kept, one per line, in file order.
        text = str(value)
        headers[name] = f"{headers[name]}\n{text}" if name in headers else text

    return_path = _addresses(message, "Return-Path")
    from_header = _addresses(message, "From")
    envelope_to = message.get(ENVELOPE_TO_HEADER)
    if envelope_to is not None:
        to = [addr.strip() for addr in str(envelope_to).split(",") if addr.strip()]
    else:
        to = _addresses(message, "To", "Cc")

    return CapturedMail(
        received_at=_received_at(path),
        mail_from=(return_path or from_header or [""])[0],
        to=to,
        subject=str(message.get("Subject", "")),
        message_id=str(message.get("Message-ID", "")).strip(),
        headers=headers,
        text=_body(message, "plain"),
        html=_body(message, "html"),
        path=path,
    )


def read_captured(mail_dir: Path) -> list[CapturedMail]:
    """Every message stored in ``mail_dir``, oldest first; an absent directory holds none."""
    mail_dir = Path(mail_dir)
    if not mail_dir.is_dir():
        return []
    return [parse_captured(path) for path in sorted(mail_dir.glob("*.eml"))]


__all__ = ["CapturedMail", "MailCapture", "parse_captured", "read_captured"]
