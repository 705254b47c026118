"""The small page agencies answer on: they follow a signed link from their email, no account needed.

GET shows the referral (only what the agency may see: case reference, complex, service, step, due
date, status) and a button; POST records the answer by resuming the waiting flow, as `yeongye
respond` does, but only at the wait for the link's own referral: a link never answers another
step, a decision, or the coordinator's choice of the next agency. A case-conference invitation is
different: the flow does not wait for it, so its answer (attend or not) is recorded in the
registry directly. A forged, expired or mismatched link changes nothing; answering twice changes
nothing the second time.

The page faces the internet, so it is built to give nothing away and to cost an attacker more
than it costs the server:
- the link is checked (signature, one canonical spelling, expiry) before a byte of the body is
  read, and the body is read as a stream that stops at ``BODY_LIMIT``; a refused upload is cut off
  (``Connection: close``) instead of being drained;
- every refusal says only what the agency needs to know, in generic words: a link that is wrong,
  expired or used, or an answer the case is not waiting for, never names the agencies or services
  a case involves (for a mental-health case that alone would disclose health information);
- requests are rate limited per client address and per link (429 with ``Retry-After``);
- every response carries strict security headers (HSTS, a CSP that allows nothing but the page's
  own style, no-store caching, no referrer);
- the page refuses to start when the links it would be reached by travel as plain http over a
  network (``YEONGYE_PUBLIC_URL``), unless that is explicitly allowed.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import hashlib
import ipaddress
import math
import sys
import threading
import time
from html import escape
from urllib.parse import parse_qs, urlsplit

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry import acts, cases, conferences, links
from registry.catalog import service_label
from registry.db import Database
from registry.models import Case, Conference, Referral
from registry.text import ID_MAX, REASON_MAX, TextError, clean_text
from yeongye import prefect_api, steering
from yeongye.settings import RegistryUnavailable, Settings, get_settings

_TITLE = "연계 답변 (referral answer)"
_CONTACT = "담당 주거복지사에게 문의해 주십시오"
_CONTACT_EN = "please contact the housing welfare worker who sent it"
# Refusals of a link: generic on purpose, whatever the link names. Forged, malformed (another
# spelling of a genuine token) and foreign links read alike, so the page tells an outsider nothing.
_INVALID_LINK = (
    403,
    f"이 링크로는 답변할 수 없습니다. 이메일의 링크를 다시 확인하시거나 {_CONTACT} "
    f"(this link cannot be used to answer; check the link in your email, or {_CONTACT_EN}).",
)
_REFUSALS = {
    "forged": _INVALID_LINK,
    "malformed": _INVALID_LINK,
    "mismatch": _INVALID_LINK,
    "expired": (410, f"링크의 유효 기간이 지났습니다. {_CONTACT} (this link has expired; {_CONTACT_EN})."),
}
_USED_TITLE = "이미 처리되었습니다 (already answered)"
_USED = (
    "이 요청의 답변은 이미 기록되었습니다. 더 하실 일은 없습니다 (the answer was already recorded; nothing more to do)."
)
_NOT_NOW_TITLE = "답변을 기록하지 못했습니다 (answer not recorded)"
_NOT_NOW = (
    f"이 사례는 지금 이 링크의 답변을 기다리고 있지 않습니다. 바뀐 것은 없습니다. {_CONTACT} "
    f"(the case is not waiting for this link's answer now; nothing was changed; {_CONTACT_EN})."
)
_WITHDRAWN = "기한이 지나 요청이 철회되었습니다 (withdrawn: no answer by the final deadline)"
_INVALID = "입력이 올바르지 않습니다 (invalid input)"
_TOO_MANY = "요청이 너무 많습니다. 잠시 후 다시 시도해 주십시오 (too many requests; please try again shortly)."
_NOT_UTF8 = "UTF-8 텍스트가 아닙니다 (the form is not UTF-8 text)"

# The largest form a person can fill in: a reason of REASON_MAX Hangul syllables (9 bytes each once
# percent-encoded, about 18 kB) and an outcome. Anything larger is cut off unread.
BODY_LIMIT = 20 * 1024
_FORM_TYPE = "application/x-www-form-urlencoded"
_ACTIONS = {
    "accept": "수락합니다 (accept)",
    "decline": "거절합니다 (decline)",
    "done": "완료를 보고합니다 (report done)",
}

# Readable on a phone: one column, large type, full-width controls at least 48 px tall.
_CSS = (
    "body{margin:0;padding:1rem;font:1.125rem/1.6 system-ui,-apple-system,'Apple SD Gothic Neo',"
    "'Malgun Gothic',sans-serif;color:#111;background:#fff}"
    "main{max-width:40rem;margin:0 auto}h1{font-size:1.4rem;line-height:1.3}"
    "table{width:100%;border-collapse:collapse;margin:1rem 0}"
    "th,td{text-align:left;vertical-align:top;padding:.6rem .3rem;border-bottom:1px solid #ddd}th{width:38%}"
    "label{display:block;font-weight:600;margin:1rem 0 .3rem}"
    "textarea,select{display:block;width:100%;box-sizing:border-box;font:inherit;padding:.75rem;"
    "min-height:3rem;border:1px solid #888;border-radius:.4rem}"
    "button{display:block;width:100%;min-height:3.25rem;margin:1.25rem 0;padding:.75rem 1rem;font:inherit;"
    "font-weight:700;color:#fff;background:#0b57d0;border:0;border-radius:.5rem;cursor:pointer}"
    "button:focus{outline:3px solid #f9ab00;outline-offset:2px}"
)
_STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
SECURITY_HEADERS = {
    "strict-transport-security": "max-age=31536000",
    "content-security-policy": (
        f"default-src 'none'; style-src '{_STYLE_HASH}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class InsecurePublicURL(RuntimeError):
    """The page would be reached by links that cross a network in plain http; it does not start."""


def _page(title: str, body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(
        '<!doctype html><html lang="ko"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>",
        status_code=status,
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def _refusal(reason: str) -> HTMLResponse:
    status, message = _REFUSALS[reason]
    return _page(_TITLE, f"<p>{escape(message)}</p>", status)


def _too_many(wait: float) -> HTMLResponse:
    return _page(_TITLE, f"<p>{escape(_TOO_MANY)}</p>", 429, {"retry-after": str(max(1, math.ceil(wait)))})


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_public_url(settings: Settings) -> None:
    """Refuse a public address the links would travel in the clear; raises ``InsecurePublicURL``.

    A link is the agency's only credential, so it must not cross a network as plain http. The
    local stack's default (http://127.0.0.1) never leaves the machine and is allowed, as is any
    loopback host; anything else needs https, or ``YEONGYE_ALLOW_HTTP_PUBLIC_URL=true``.
    """
    url = settings.answer_base_url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and host and (_is_loopback(host) or settings.allow_http_public_url):
        return
    if parts.scheme == "http" and host:
        raise InsecurePublicURL(
            f"YEONGYE_PUBLIC_URL 이 http:// 주소입니다 ({url}). 답변 링크는 기관이 가진 유일한 인증 수단이므로 "
            "암호화되지 않은 채 네트워크를 지나면 안 됩니다. https:// 주소를 쓰시거나, 꼭 필요하면 "
            "YEONGYE_ALLOW_HTTP_PUBLIC_URL=true 로 명시적으로 허용하십시오 (YEONGYE_PUBLIC_URL is an http:// "
            "address; answer links would cross the network unencrypted. Use https://, or set "
            "YEONGYE_ALLOW_HTTP_PUBLIC_URL=true to allow it explicitly; loopback hosts need neither)"
        )
    raise InsecurePublicURL(
        f"YEONGYE_PUBLIC_URL 은 https:// 로 시작하는 주소여야 합니다 ({url}) "
        "(YEONGYE_PUBLIC_URL must be an https:// address)"
    )


class RateLimiter:
    """At most ``limit`` requests per key in any ``window`` seconds (a sliding-window log).

    The page is one process, so the log lives in memory; it keeps at most ``max_keys`` keys (the
    least recently seen go first), so a flood of new addresses cannot exhaust memory.
    """

    def __init__(self, limit: int, window: float, max_keys: int = 10_000) -> None:
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._hits: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str) -> float:
        """Count a request and return 0; or, over the limit, count nothing and return the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                hits = self._hits[key] = collections.deque()
                while len(self._hits) > self.max_keys:
                    self._hits.popitem(last=False)
            else:
                self._hits.move_to_end(key)
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return hits[0] + self.window - now
            hits.append(now)
            return 0.0


def _client_key(scope: Scope) -> str:
    """The client's address, an IPv6 client by its /64 (one household or office can hold a whole /64)."""
    client = scope.get("client")
    host = client[0] if client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class _Guard:
    """Every response: security headers; every request: the per-address rate limit.

    A response sent before the request body was read to its end closes the connection, so the
    server never drains a body it refused (a 100 MB upload is cut off, not read).
    """

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        body_read = headers.get(b"content-length", b"0") == b"0" and b"transfer-encoding" not in headers

        async def receiving() -> Message:
            nonlocal body_read
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_read = True
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    response_headers[name] = value
                if not body_read:
                    response_headers["connection"] = "close"
            await send(message)

        wait = self.limiter.hit(_client_key(scope))
        if wait:
            await _too_many(wait)(scope, receiving, sending)
            return
        await self.app(scope, receiving, sending)


def create_app(settings: Settings, db: Database, prefect_api_url: str) -> FastAPI:
    check_public_url(settings)
    # A bad key file stops the page here, at start, rather than failing every request.
    links.load_keys(settings.link_secret_file, settings.link_old_keys)
    app = FastAPI(title="yeongye answers", docs_url=None, redoc_url=None, openapi_url=None)
    per_link = RateLimiter(settings.answer_rate_per_link, settings.answer_rate_window)
    app.add_middleware(
        _Guard, limiter=RateLimiter(settings.answer_rate_per_address, settings.answer_rate_window, max_keys=50_000)
    )

    async def http_error(request: Request, error: Exception) -> HTMLResponse:
        status = error.status_code if isinstance(error, StarletteHTTPException) else 500
        message = {
            404: "페이지를 찾을 수 없습니다 (page not found).",
            405: "허용되지 않는 요청입니다 (method not allowed).",
        }.get(status, "요청을 처리하지 못했습니다 (the request could not be handled).")
        return _page(_TITLE, f"<p>{escape(message)}</p>", status)

    async def unexpected(request: Request, error: Exception) -> HTMLResponse:
        """A fault of the page itself: a generic page, never a traceback (the log has the details)."""
        return _page(
            _TITLE,
            "<p>일시적인 오류입니다. 잠시 후 다시 시도해 주십시오 (a temporary error; please try again).</p>",
            500,
        )

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)

    def check_link(request: Request, token: str) -> links.Claim | HTMLResponse:
        """The link's claim, checked before anything else is done for the request; or the refusal.

        The path arrives percent-decoded; the token must also be spelled that way on the wire,
        so ``%41`` for ``A`` is another spelling, refused like any other.
        """
        raw = request.scope.get("raw_path")
        if isinstance(raw, bytes) and raw.rsplit(b"/", 1)[-1] != token.encode("utf-8", "replace"):
            return _refusal("malformed")
        try:
            claim = links.verify(
                token, links.load_keys(settings.link_secret_file, settings.link_old_keys), dt.datetime.now(dt.UTC)
            )
        except links.LinkError as error:
            return _refusal(error.reason)
        wait = per_link.hit(token)
        if wait:
            return _too_many(wait)
        return claim

    def lookup(claim: links.Claim) -> tuple[Referral, str] | HTMLResponse:
        """The link's referral and its service as the agency may read it; or the refusal."""
        with db.transaction() as session:
            referral = session.get(Referral, claim.referral_id)
            case_id = session.scalar(select(Case.id).where(Case.ref == claim.case_ref))
            # An invitation is answered with attend or not; there is nothing to report done.
            invitation_done = (
                referral is not None and referral.kind == conferences.INVITATION and claim.purpose == "done"
            )
            if referral is None or case_id != referral.case_id or invitation_done:
                return _refusal("mismatch")
            # The page shows what the agency's email showed: a health service only with consent or a legal basis.
            shown = cases.shown_service(session, cases.find_case(session, claim.case_ref), referral, "ko")
            session.expunge(referral)
        return referral, shown

    def closed(claim: links.Claim, referral: Referral) -> HTMLResponse | None:
        """The generic page for a referral this link can no longer answer, or None."""
        if referral.status == "failed":
            return _page(_WITHDRAWN, f"<p>{escape(_CONTACT)} ({escape(_CONTACT_EN)}).</p>", 409)
        if referral.status in cases.FINAL_STATUSES or referral.status == claim.status:
            return _page(_USED_TITLE, f"<p>{escape(_USED)}</p>")
        return None

    def summary(claim: links.Claim, referral: Referral, service: str) -> str:
        step = referral.step if service == service_label(referral.service, "ko") else "-"
        return (
            f"<table><tr><th>사례 (case)</th><td>{escape(claim.case_ref)}</td></tr>"
            f"<tr><th>요청 (request)</th><td>{escape(service)}</td></tr>"
            f"<tr><th>단계 (step)</th><td>{escape(step)}</td></tr>"
            f"{meeting(referral)}"
            f"<tr><th>기한 (due)</th><td>{referral.due_date.isoformat()}</td></tr>"
            f"<tr><th>현재 상태 (status)</th><td>{escape(referral.status)}</td></tr></table>"
        )

    def meeting(referral: Referral) -> str:
        """For an invitation: when and where the conference meets."""
        if referral.kind != conferences.INVITATION:
            return ""
        with db.transaction() as session:
            conference = session.scalar(
                select(Conference).where(Conference.case_id == referral.case_id, Conference.step == referral.step)
            )
            if conference is None:
                return ""
            start, end = conferences.starts_at(conference), conferences.ends_at(conference)
            place = conference.place
        return (
            f"<tr><th>일시 (when)</th><td>{start:%Y-%m-%d %H:%M}–{end:%H:%M}</td></tr>"
            f"<tr><th>장소 (where)</th><td>{escape(place)}</td></tr>"
        )

    def form_page(claim: links.Claim) -> HTMLResponse:
        found = lookup(claim)
        if isinstance(found, HTMLResponse):
            return found
        referral, service = found
        done = closed(claim, referral)
        if done is not None:
            return done
        reason = (
            "<label for='reason'>사유·결과 (reason / outcome)</label><textarea id='reason' name='reason' rows='4'"
            f" maxlength='{REASON_MAX}'{' required' if claim.purpose == 'decline' else ''}></textarea>"
            if claim.purpose != "accept"
            else ""
        )
        choices = "".join(f"<option value='{escape(o)}'>{escape(o)}</option>" for o in referral.outcomes)
        outcome = (
            "<label for='outcome'>결과 (outcome)</label>"
            f"<select id='outcome' name='outcome' required>{choices}</select>"
            if claim.purpose == "done" and referral.outcomes
            else ""
        )
        form = f"<form method='post'>{outcome}{reason}<button type='submit'>{_ACTIONS[claim.purpose]}</button></form>"
        return _page(_TITLE, summary(claim, referral, service) + form)

    @app.get("/answer/{token}", response_class=HTMLResponse)
    async def show(token: str, request: Request) -> HTMLResponse:
        claim = check_link(request, token)
        if isinstance(claim, HTMLResponse):
            return claim
        return await run_in_threadpool(form_page, claim)

    @app.post("/answer/{token}", response_class=HTMLResponse)
    async def answer(token: str, request: Request) -> HTMLResponse:
        # The link first: a refused link never gets its body read.
        claim = check_link(request, token)
        if isinstance(claim, HTMLResponse):
            return claim
        fields = await read_form(request)
        if isinstance(fields, HTMLResponse):
            return fields
        return await run_in_threadpool(record, claim, *fields)

    async def read_form(request: Request) -> tuple[str, str] | HTMLResponse:
        """The reason and outcome posted, checked; or the page saying why they cannot be taken.

        The body is read as a stream and reading stops at ``BODY_LIMIT``, whatever Content-Length
        says (or when there is none). Browsers post forms as UTF-8 without saying so (Starlette's
        form parser would assume latin-1), so the body is decoded here, strictly: bytes that are
        not UTF-8 are refused, not replaced.
        """
        too_large = _page(_INVALID, f"<p>입력이 너무 깁니다 (the form is larger than {BODY_LIMIT} bytes)</p>", 413)
        media, _, parameters = request.headers.get("content-type", _FORM_TYPE).partition(";")
        charset = parameters.strip().lower().removeprefix("charset=").strip('"') if parameters.strip() else "utf-8"
        if media.strip().lower() != _FORM_TYPE or charset not in ("utf-8", "utf8"):
            return _page(
                _INVALID,
                "<p>양식 형식이 올바르지 않습니다. 이메일의 링크에서 다시 답변해 주십시오 "
                "(the form must be sent as application/x-www-form-urlencoded UTF-8)</p>",
                400,
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > BODY_LIMIT:
            return too_large
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > BODY_LIMIT:
                    return too_large
        except ClientDisconnect:
            return _page(_INVALID, "<p>입력이 끝까지 전달되지 않았습니다 (the form arrived incomplete)</p>", 400)
        try:
            fields = parse_qs(body.decode("utf-8"), errors="strict", max_num_fields=8)
            if any(len(values) > 1 for values in fields.values()):
                raise ValueError("a field given twice")
            reason = clean_text(fields.get("reason", [""])[0], "사유 (reason)", REASON_MAX, multiline=True)
            outcome = clean_text(fields.get("outcome", [""])[0], "결과 (outcome)", ID_MAX)
        except UnicodeDecodeError:
            return _page(_INVALID, f"<p>{_NOT_UTF8}</p>", 400)
        except TextError as error:
            return _page(_INVALID, f"<p>{escape(str(error))}</p>", 400)
        except ValueError:
            return _page(_INVALID, "<p>입력 항목이 올바르지 않습니다 (unexpected or repeated fields)</p>", 400)
        return reason, outcome

    def record(claim: links.Claim, reason: str, outcome: str) -> HTMLResponse:
        found = lookup(claim)
        if isinstance(found, HTMLResponse):
            return found
        referral, service = found
        done = closed(claim, referral)
        if done is not None:
            return done
        # The answer's own rules first, so that what the agency can fix gets its own message and
        # every refusal left (the case is elsewhere) is the generic one.
        if claim.purpose == "decline" and not reason.strip():
            return _page(_INVALID, "<p>사유 (reason): 거절 사유를 입력해 주십시오 (a reason is required)</p>", 400)
        if claim.purpose == "done" and referral.outcomes and outcome not in referral.outcomes:
            return _page(_INVALID, "<p>결과 (outcome): 목록에서 결과를 골라 주십시오 (choose an outcome)</p>", 400)
        if referral.kind == conferences.INVITATION:
            return record_invitation(claim, referral, service, reason)
        try:
            with prefect_api.connected(settings, prefect_api_url):
                steering.answer_referral(
                    db,
                    claim.case_ref,
                    referral.id,
                    status=claim.status,
                    reason=reason.strip(),
                    outcome=outcome if claim.purpose == "done" else "",
                    by=acts.link_actor(referral.id),
                )
        except (steering.SteeringError, cases.CaseError):
            # The message names the step and agencies the case waits on: for the log, never the page.
            return _page(_NOT_NOW_TITLE, f"<p>{escape(_NOT_NOW)}</p>", 409)
        return _page("답변이 전달되었습니다 (answer recorded)", summary(claim, referral, service))

    def record_invitation(claim: links.Claim, referral: Referral, service: str, reason: str) -> HTMLResponse:
        """Record whether the agency comes to the conference; the flow is not waiting, so it is not resumed."""
        try:
            with db.transaction() as session:
                case = cases.find_case(session, claim.case_ref)
                current = session.get(Referral, referral.id)
                assert current is not None
                cases.record_answer(
                    session,
                    case,
                    current,
                    status=claim.status,
                    reason=reason.strip(),
                    actor=acts.link_actor(referral.id),
                    at=dt.datetime.now(dt.UTC),
                )
        except cases.CaseError:
            return _page(_NOT_NOW_TITLE, f"<p>{escape(_NOT_NOW)}</p>", 409)
        return _page("회신이 기록되었습니다 (answer recorded)", summary(claim, current, service))

    return app


def _config(app: FastAPI, port: int) -> uvicorn.Config:
    """Loopback only (a TLS proxy faces the internet); no Server header; X-Forwarded-For trusted from loopback only."""
    return uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", server_header=False)


class AnswerServer:
    """The answer page on loopback, served by uvicorn from a thread of the calling process."""

    def __init__(self, app: FastAPI, port: int) -> None:
        self._server = uvicorn.Server(_config(app, port))
        self._thread = threading.Thread(target=self._server.run, name="answer-page", daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"answer page did not start on port {self._server.config.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def main() -> int:
    """Serve the answer page alone in the foreground (``python -m yeongye.answers``), e.g. behind a TLS proxy.

    A configuration it must not run with (an http public address, a bad key file, no registry)
    stops it with the reason and exit code 2, before it listens.
    """
    settings = get_settings()
    try:
        app = create_app(settings, Database(settings.registry_url), settings.prefect_api_url)
    except (InsecurePublicURL, links.LinkKeyError, RegistryUnavailable) as error:
        print(error, file=sys.stderr)
        return 2
    uvicorn.Server(_config(app, settings.answer_port)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
