"""The answer page faces the internet: checked links first, bounded bodies, generic refusals, limits, headers.

Every test talks HTTP to the real page: in a thread of the test process where that is enough, and
as its own process (``python -m yeongye.answers``) where the process itself is what is measured:
its memory while a 100 MB upload is refused, its exit when the configuration is unsafe.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from registry import calendar, cases, links
from registry.catalog import service_label
from registry.db import Database
from registry.models import Agency, Referral
from yeongye.answers import InsecurePublicURL, create_app
from yeongye.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class HealthCase:
    """A mental-health case: two open referrals, and every word an error page must not say about it."""

    ref: str
    mental_health: int  # the 정신건강복지센터's referral
    health_center: int  # the 보건소's referral
    secrets: tuple[str, ...]


@pytest.fixture
def health_case(registry: Database) -> HealthCase:
    """A counselling case waiting on the 정신건강복지센터 and the 보건소, without consent to name either service."""
    with registry.transaction() as session:
        case = cases.open_case(
            session,
            intervention="mh-counselling",
            complex_code="B",
            resident_ref="R-B-001",
            opened_at=dt.datetime.now(dt.UTC),
            by="coord-b",
        )
        due = calendar.today(calendar.SystemClock()) + dt.timedelta(days=7)
        ids, words = [], {"R-B-001"}
        for agency_id, service in [("gaon-mhwc-1", "mental-health"), ("gaon-phc-1", "treatment-linkage")]:
            agency = session.get(Agency, agency_id)
            assert agency is not None
            referral = cases.open_referral(
                session, case, step="mental-health-linkage", agency=agency, service=service, due_date=due
            )
            ids.append(referral.id)
            words |= {agency.id, agency.name, agency.type_code, service, service_label(service, "ko")}
            words |= {service_label(service, "en"), referral.step}
        ref = case.ref
    return HealthCase(ref, ids[0], ids[1], (*sorted(words), "정신", "mental", "보건소"))


def _token(case_ref: str, referral_id: int, purpose: str = "done", *, days: float = 1) -> str:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    secret = links.load_secret(get_settings().link_secret_file)
    return links.sign(links.Claim(case_ref, referral_id, purpose, expires), secret)


Serve = Callable[..., str]


@pytest.fixture
def serve(registry: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Serve]:
    """Start the page in a thread with extra settings (YEONGYE_* without the prefix); returns its base URL."""
    from yeongye.answers import AnswerServer

    servers: list[AnswerServer] = []

    def start(**env: str) -> str:
        port = _free_port()
        monkeypatch.setenv("YEONGYE_ANSWER_PORT", str(port))
        for name, value in env.items():
            monkeypatch.setenv(f"YEONGYE_{name.upper()}", value)
        server = AnswerServer(create_app(get_settings(), registry, "http://127.0.0.1:9/api"), port)
        server.start()
        servers.append(server)
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop()


def _page_process(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "yeongye.answers"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def page_process(registry: Database) -> Iterator[tuple[str, psutil.Process]]:
    """The page as its own process, with the default (loopback http) configuration and nothing else set."""
    port = _free_port()
    process = _page_process({"YEONGYE_ANSWER_PORT": str(port)})
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, process.communicate()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the answer page did not start"
            time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}", psutil.Process(process.pid)
    finally:
        process.terminate()
        process.communicate(timeout=30)


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    text: str
    sent: int  # request body bytes the server let the client send


def _post_large(base: str, path: str, size: int, *, chunked: bool) -> RawAnswer:
    """POST ``size`` bytes the way a hostile client would, stopping when the server answers or hangs up."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"{framing}\r\n\r\n".encode()
    )
    piece = b"a" * (256 * 1024)
    data = b"reason=" + piece[7:]
    sent, received, hung_up = 0, b"", False
    # Keep sending after the answer arrives: a server that drains the body lets all of it through.
    while sent < size and not hung_up:
        readable, writable, _ = select.select([sock], [sock], [], 10)
        if not readable and not writable:
            break  # neither reading nor answering: the caller's assertions say what is wrong
        if readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            received += chunk
            hung_up = not chunk
        if writable and not hung_up:
            frame = f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data
            try:
                sent += sock.send(frame[: size - sent] if not chunked else frame)
            except (BrokenPipeError, ConnectionResetError):
                hung_up = True
            data = piece
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    finally:
        sock.close()
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines and lines[0].startswith("HTTP/1.1 "), received[:200]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return RawAnswer(int(lines[0].split()[1]), headers, body.decode("utf-8", "replace"), sent)


def test_a_100_mb_upload_is_cut_off_unread_and_the_page_keeps_its_memory(
    health_case: HealthCase, page_process: tuple[str, psutil.Process]
) -> None:
    base, server = page_process
    link = f"/answer/{_token(health_case.ref, health_case.mental_health, 'done')}"
    # Warm up every path the uploads take, so that what follows measures the uploads alone.
    assert httpx.get(base + link, timeout=60).status_code == 200
    assert _post_large(base, link, 1 * MB, chunked=True).status == 413
    baseline = server.memory_info().rss

    peak = baseline
    sampling = True

    def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, server.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        declared = _post_large(base, link, 100 * MB, chunked=False)
        streamed = _post_large(base, link, 100 * MB, chunked=True)  # no Content-Length to go by
        forged = _post_large(base, link[:-2] + ("AA" if not link.endswith("AA") else "BB"), 100 * MB, chunked=True)
    finally:
        sampling = False
        sampler.join()

    for answer in (declared, streamed):
        assert answer.status == 413 and "입력이 너무 깁니다" in answer.text, answer
        assert answer.headers.get("connection") == "close"
    # The link is checked before the body: a forged link is refused as such, not as too large.
    assert forged.status == 403 and "이 링크로는 답변할 수 없습니다" in forged.text
    for answer in (declared, streamed, forged):
        assert answer.sent < 50 * MB, answer.sent  # cut off: the client could not push the body through
    assert peak - baseline < 20 * MB, (baseline, peak)
    # And the page still serves.
    assert httpx.get(base + link, timeout=60).status_code == 200


def test_bytes_that_are_not_a_utf8_form_get_a_400_in_korean_first(health_case: HealthCase, serve: Serve) -> None:
    base = serve()
    link = f"{base}/answer/{_token(health_case.ref, health_case.mental_health, 'decline')}"
    for body, content_type, says in [
        (b"reason=\xff\xfe", "application/x-www-form-urlencoded", "UTF-8 텍스트가 아닙니다"),
        (b"reason=%C3%28", "application/x-www-form-urlencoded", "UTF-8 텍스트가 아닙니다"),
        (b"reason=%ED%A0%80", "application/x-www-form-urlencoded; charset=utf-8", "UTF-8 텍스트가 아닙니다"),
        (b"reason=a", "application/x-www-form-urlencoded; charset=euc-kr", "양식 형식이 올바르지 않습니다"),
        (b'{"reason": "a"}', "application/json", "양식 형식이 올바르지 않습니다"),
        (b"reason=a&reason=b", "application/x-www-form-urlencoded", "입력 항목이 올바르지 않습니다"),
    ]:
        posted = httpx.post(link, content=body, headers={"content-type": content_type}, timeout=60)
        assert posted.status_code == 400, (body, posted.status_code, posted.text[:300])
        message = re.search(r"<p>(.*?)</p>", posted.text)
        assert message and message.group(1).startswith(says), posted.text
        assert "Traceback" not in posted.text


def test_error_pages_name_no_agency_or_service_of_the_case(
    health_case: HealthCase, serve: Serve, registry: Database
) -> None:
    base = serve(answer_rate_per_address="1000", answer_rate_per_link="1000")
    ref = health_case.ref
    mh = _token(ref, health_case.mental_health, "accept")
    other = _token(ref, health_case.health_center, "decline")
    pages: dict[str, httpx.Response] = {
        "forged": httpx.get(f"{base}/answer/{mh[:-2]}{'AA' if not mh.endswith('AA') else 'BB'}"),
        "re-encoded": httpx.get(f"{base}/answer/{mh}%3D"),
        "expired": httpx.get(f"{base}/answer/{_token(ref, health_case.mental_health, 'accept', days=-1)}"),
        "foreign": httpx.get(f"{base}/answer/{_token('C-2026-9999', health_case.mental_health, 'accept')}"),
        # The case has no flow run waiting for this answer: "not your turn".
        "not now": httpx.post(f"{base}/answer/{mh}", timeout=60),
        "too large": httpx.post(f"{base}/answer/{other}", data={"reason": "가" * 10_000}),
        "not utf-8": httpx.post(f"{base}/answer/{other}", content=b"reason=\xff"),
        "no reason": httpx.post(f"{base}/answer/{other}", data={"reason": " "}),
        "not found": httpx.get(f"{base}/answer/{mh}/x"),
        "method": httpx.put(f"{base}/answer/{mh}"),
    }
    with registry.transaction() as session:
        referral = session.get(Referral, health_case.health_center)
        assert referral is not None
        referral.status = "rejected"
        withdrawn = session.get(Referral, health_case.mental_health)
        assert withdrawn is not None
        withdrawn.status = "failed"
    pages["used"] = httpx.post(f"{base}/answer/{other}", data={"reason": "다시"})
    pages["used, opened"] = httpx.get(f"{base}/answer/{other}")
    pages["withdrawn"] = httpx.post(f"{base}/answer/{mh}")

    expected = {"forged": 403, "re-encoded": 403, "expired": 410, "foreign": 403, "not now": 409, "too large": 413}
    expected |= {"not utf-8": 400, "no reason": 400, "not found": 404, "method": 405, "used": 200, "withdrawn": 409}
    for name, page in pages.items():
        assert page.status_code == expected.get(name, page.status_code), (name, page.status_code, page.text[:300])
        assert page.headers["content-type"].startswith("text/html"), name
        said = [word for word in health_case.secrets if word.lower() in page.text.lower()]
        assert said == [], (name, said)
    assert "이미 처리되었습니다" in pages["used"].text and "이미 처리되었습니다" in pages["used, opened"].text
    assert "철회" in pages["withdrawn"].text
    assert "지금 이 링크의 답변을 기다리고 있지 않습니다" in pages["not now"].text
    for name in ("forged", "re-encoded", "foreign"):  # one generic text, whatever is wrong with the link
        assert re.search(r"<p>(.*?)</p>", pages[name].text).group(1).startswith("이 링크로는 답변할 수 없습니다")  # type: ignore[union-attr]


def _equivalent_last_char(signature: str) -> str:
    """Another base64 spelling of the same 32 bytes: the last character's two unused bits set differently."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    index = alphabet.index(signature[-1])
    return signature[:-1] + alphabet[index ^ 1]


def test_a_token_spelled_another_way_is_refused(health_case: HealthCase, serve: Serve) -> None:
    base = serve(answer_rate_per_address="1000", answer_rate_per_link="1000")
    token = _token(health_case.ref, health_case.mental_health, "accept")
    kid, body, signature = token.split(".")
    assert httpx.get(f"{base}/answer/{token}").status_code == 200

    other_mac = _equivalent_last_char(signature)
    assert base64.urlsafe_b64decode(other_mac + "=") == base64.urlsafe_b64decode(signature + "=")
    std_alphabet = token.translate(str.maketrans("-_", "+/"))
    variants = {
        "padding": f"{kid}.{body}.{signature}=",
        "padding, percent-encoded": f"{kid}.{body}.{signature}%3D",
        "the same MAC spelled otherwise": f"{kid}.{body}.{other_mac}",
        "percent-encoded letter": f"%{ord(token[0]):02X}{token[1:]}",
        "percent-encoded dot": token.replace(".", "%2E", 1),
        "leading space": f"%20{token}",
        "trailing newline": f"{token}%0A",
        "tab inside": f"{kid}.%09{body}.{signature}",
    }
    # A key id is 8 hex digits: one without a letter (2 % of keys) has no upper-case spelling.
    upper_kid = [f"{kid.upper()}.{body}.{signature}"] if kid.upper() != kid else []
    if upper_kid:
        variants["upper-case key id"] = upper_kid[0]
    if std_alphabet != token:
        variants["standard base64 alphabet"] = std_alphabet.replace("+", "%2B").replace("/", "%2F")
    for name, variant in variants.items():
        page = httpx.get(f"{base}/answer/{variant}")
        assert page.status_code in (403, 404), (name, page.status_code)
        assert "사례 (case)" not in page.text, name
    # At the library too, without any URL in between.
    for variant in (f"{kid}.{body}.{other_mac}", *upper_kid, f" {token}", f"{token}="):
        with pytest.raises(links.LinkError):
            links.verify(variant, links.load_secret(get_settings().link_secret_file), dt.datetime.now(dt.UTC))


def test_a_retired_key_verifies_its_links_until_it_is_removed(health_case: HealthCase, serve: Serve) -> None:
    settings = get_settings()
    old_link = _token(health_case.ref, health_case.mental_health, "accept")  # creates the first key
    assert settings.link_secret_file.stat().st_mode & 0o777 == 0o600
    old_key = settings.link_secret_file.read_bytes()
    assert old_link.split(".")[0] == links.key_id(old_key)

    # Rotation as the README says: the current key moves into link-secret.old/, a new one is made.
    settings.link_old_keys.mkdir(mode=0o700)
    retired = settings.link_old_keys / "2026-01"
    shutil.move(settings.link_secret_file, retired)
    base = serve(answer_rate_per_address="1000", answer_rate_per_link="1000")
    new_key = settings.link_secret_file.read_bytes()
    assert new_key != old_key and settings.link_secret_file.stat().st_mode & 0o777 == 0o600
    new_link = _token(health_case.ref, health_case.mental_health, "accept")
    assert new_link.split(".")[0] == links.key_id(new_key)

    assert httpx.get(f"{base}/answer/{old_link}").status_code == 200
    assert httpx.get(f"{base}/answer/{new_link}").status_code == 200

    retired.unlink()
    refused = httpx.get(f"{base}/answer/{old_link}")
    assert refused.status_code == 403 and "이 링크로는 답변할 수 없습니다" in refused.text
    assert httpx.get(f"{base}/answer/{new_link}").status_code == 200


def test_too_many_requests_per_link_and_per_address_get_429(health_case: HealthCase, serve: Serve) -> None:
    base = serve(answer_rate_per_link="3", answer_rate_per_address="8", answer_rate_window="60")
    first = f"{base}/answer/{_token(health_case.ref, health_case.mental_health, 'accept')}"
    second = f"{base}/answer/{_token(health_case.ref, health_case.health_center, 'accept')}"

    assert [httpx.get(first).status_code for _ in range(3)] == [200, 200, 200]
    limited = httpx.get(first)
    assert limited.status_code == 429 and "요청이 너무 많습니다" in limited.text
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # Another link from the same address still answers, until the address has had its 8 requests.
    assert [httpx.get(second).status_code for _ in range(2)] == [200, 200]
    assert [httpx.get(f"{base}/nothing-here").status_code for _ in range(2)] == [404, 404]
    for url in (second, f"{base}/nothing-here"):
        blocked = httpx.get(url)
        assert blocked.status_code == 429 and 1 <= int(blocked.headers["retry-after"]) <= 60


def test_every_response_carries_the_security_headers_and_fits_a_phone(health_case: HealthCase, serve: Serve) -> None:
    base = serve(answer_rate_per_link="2")
    link = f"{base}/answer/{_token(health_case.ref, health_case.mental_health, 'done')}"
    responses = [
        httpx.get(link),
        httpx.get(f"{base}/answer/nonsense"),
        httpx.get(f"{base}/"),
        httpx.post(link, content=b"reason=\xff"),
        httpx.get(link),  # the third time: 429
    ]
    assert [r.status_code for r in responses] == [200, 403, 404, 400, 429]
    for response in responses:
        headers = response.headers
        assert headers["strict-transport-security"].startswith("max-age=")
        assert headers["cache-control"] == "no-store"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        policy = {d.split()[0]: d.split()[1:] for d in headers["content-security-policy"].split("; ")}
        assert policy["default-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
        assert policy["form-action"] == ["'self'"]
        # The page's one style block is the only style the policy lets through.
        style = re.search(r"<style>(.*?)</style>", response.text, re.S)
        assert style, response.text[:300]
        digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
        assert policy["style-src"] == [f"'sha256-{digest}'"]
        assert "server" not in headers
    page = responses[0].text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "style=" not in page and "<script" not in page
    assert re.search(r"button\{[^}]*min-height:3\.25rem", page)  # a tap target of at least 48 px


def test_an_http_public_url_is_refused_at_start_except_on_loopback(registry: Database) -> None:
    started = _page_process({"YEONGYE_PUBLIC_URL": "http://answers.gaon.example", "YEONGYE_ANSWER_PORT": "9"})
    _, stderr = started.communicate(timeout=180)
    message = stderr.decode().strip()
    assert started.returncode == 2, message
    assert "YEONGYE_PUBLIC_URL" in message and "YEONGYE_ALLOW_HTTP_PUBLIC_URL" in message
    assert re.match(r"[A-Z_]+ [이은] http:// 주소입니다", message), message  # Korean first
    assert "Traceback" not in message

    def starts(**values: object) -> bool:
        try:
            create_app(Settings(**values), registry, "http://127.0.0.1:9/api")  # type: ignore[arg-type]
        except InsecurePublicURL:
            return False
        return True

    assert starts()  # the local stack's default: http://127.0.0.1:<answer_port>
    for url in ("http://127.0.0.1:8030", "http://localhost:8030/", "http://[::1]:8030", "https://answers.gaon.example"):
        assert starts(public_url=url), url
    for url in (
        "http://answers.gaon.example",
        "http://127.0.0.1.gaon.example",
        "http://10.0.0.5",
        "ftp://gaon.example",
    ):
        assert not starts(public_url=url), url
    assert starts(public_url="http://answers.gaon.example", allow_http_public_url=True)
