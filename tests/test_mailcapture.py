"""MailCapture must keep Korean multipart mail intact, so flows can be checked end to end offline."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

from yeongye.mailcapture import MailCapture, read_captured


def _send(port: int, message: EmailMessage, **kwargs: object) -> None:
    asyncio.run(aiosmtplib.send(message, hostname="127.0.0.1", port=port, timeout=10, **kwargs))  # type: ignore[arg-type]


def test_captures_korean_multipart_mail(tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    message = EmailMessage()
    message["From"] = "연계 시스템 <yeongye@localhost>"
    message["To"] = "주거복지센터 <housing@agency.example>, welfare@agency.example"
    message["Subject"] = "[연계] 사례 C-2024-17 저장강박 의심 세대 협조 요청"
    message.set_content("안녕하세요.\n사례 C-2024-17에 대한 협조를 요청드립니다.\n")
    message.add_alternative("<p>안녕하세요.<br><b>사례 C-2024-17</b> 협조 요청</p>", subtype="html")

    with MailCapture(mail_dir, port=0) as capture:
        assert capture.port > 0
        _send(
            capture.port, message, recipients=["housing@agency.example", "welfare@agency.example", "bcc@agency.example"]
        )

    [mail] = read_captured(mail_dir)
    assert mail.subject == "[연계] 사례 C-2024-17 저장강박 의심 세대 협조 요청"
    assert "사례 C-2024-17에 대한 협조를 요청드립니다." in mail.text
    assert "<b>사례 C-2024-17</b> 협조 요청" in mail.html
    # Envelope recipients, including the Bcc one that no header shows.
    assert mail.to == ["housing@agency.example", "welfare@agency.example", "bcc@agency.example"]
    assert mail.mail_from == "yeongye@localhost"
    assert mail.headers["To"] == "주거복지센터 <housing@agency.example>, welfare@agency.example"
    assert mail.message_id == "" or mail.message_id.startswith("<")
    assert mail.path.suffix == ".eml" and mail.path.parent == mail_dir
    assert mail.received_at.tzinfo is not None


def test_smtputf8_8bit_and_arrival_order(tmp_path: Path) -> None:
    """Raw UTF-8 headers and 8-bit bodies (SMTPUTF8 + 8BITMIME) arrive unchanged and in order."""
    with MailCapture(tmp_path, port=0) as capture:
        for n in range(3):
            message = EmailMessage()
            message["From"] = "담당자@주민센터.kr"
            message["To"] = "통장@동네.kr"
            message["Subject"] = f"{n}번째 알림"
            message.set_content(f"본문 {n}", cte="8bit")
            _send(capture.port, message)
        # A second start/stop cycle keeps the same port and directory.
        port = capture.port
    capture.start()
    try:
        assert capture.port == port
    finally:
        capture.stop()

    mails = read_captured(tmp_path)
    assert [m.subject for m in mails] == ["0번째 알림", "1번째 알림", "2번째 알림"]
    assert [m.text.strip() for m in mails] == ["본문 0", "본문 1", "본문 2"]
    assert mails[0].mail_from == "담당자@주민센터.kr"
    assert mails[0].to == ["통장@동네.kr"]
    assert b"\xeb\xb3\xb8\xeb\xac\xb8 0" in mails[0].path.read_bytes()  # "본문 0" as raw UTF-8
    assert [m.received_at for m in mails] == sorted(m.received_at for m in mails)


def test_read_captured_missing_dir(tmp_path: Path) -> None:
    assert read_captured(tmp_path / "nothing") == []
