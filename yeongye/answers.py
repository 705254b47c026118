"""The small page agencies answer on: they follow a signed link from their email, no account needed.

GET shows the referral (only what the agency may see: case reference, complex, service, step, due
date, status) and a button; POST records the answer by resuming the waiting flow, as `yeongye
respond` does, but only at the wait for the link's own referral: a link never answers another
step, a decision, or the coordinator's choice of the next agency. A case-conference invitation is
different: the flow does not wait for it, so its answer (attend or not) is recorded in the
registry directly. A forged, expired or mismatched link changes nothing; answering twice changes
nothing the second time. The posted form is read with a size limit and checked like every other
input (``registry.text``) before anything else happens.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from html import escape
from urllib.parse import parse_qs

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from registry import cases, conferences, links
from registry.catalog import service_label
from registry.db import Database
from registry.models import Case, Conference, Referral
from registry.text import ID_MAX, REASON_MAX, TextError, clean_text
from yeongye import steering
from yeongye.settings import Settings

_REFUSALS = {
    "forged": (403, "유효하지 않은 링크입니다 (this link is not valid)."),
    "malformed": (400, "링크 형식이 올바르지 않습니다 (this link is malformed)."),
    "expired": (410, "링크의 유효 기간이 지났습니다. 담당 주거복지사에게 연락해 주십시오 (this link has expired)."),
    "mismatch": (403, "이 링크는 이 연계에 쓸 수 없습니다 (this link does not belong to this referral)."),
}
_INVALID = "입력이 올바르지 않습니다 (invalid input)"
_WITHDRAWN = "기한이 지나 요청이 철회되었습니다 (withdrawn: no answer by the final deadline)"
# A form of one reason and one outcome is far smaller; anything larger is not read at all.
BODY_LIMIT = 64 * 1024
_ACTIONS = {
    "accept": "수락합니다 (accept)",
    "decline": "거절합니다 (decline)",
    "done": "완료를 보고합니다 (report done)",
}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="ko"><head><meta charset="utf-8"><title>{escape(title)}</title></head>'
        f"<body><h1>{escape(title)}</h1>{body}</body></html>",
        status_code=status,
    )


def create_app(settings: Settings, db: Database, prefect_api_url: str) -> FastAPI:
    app = FastAPI(title="yeongye answers", docs_url=None, redoc_url=None, openapi_url=None)
    secret = links.load_secret(settings.link_secret_file)

    def claim_and_referral(token: str) -> tuple[links.Claim, Referral] | HTMLResponse:
        try:
            claim = links.verify(token, secret, dt.datetime.now(dt.UTC))
        except links.LinkError as error:
            status, message = _REFUSALS[error.reason]
            return _page("연계 답변 (referral answer)", f"<p>{message}</p>", status)
        with db.transaction() as session:
            referral = session.get(Referral, claim.referral_id)
            case_id = session.scalar(select(Case.id).where(Case.ref == claim.case_ref))
            # An invitation is answered with attend or not; there is nothing to report done.
            invitation_done = (
                referral is not None and referral.kind == conferences.INVITATION and claim.purpose == "done"
            )
            if referral is None or case_id != referral.case_id or invitation_done:
                status, message = _REFUSALS["mismatch"]
                return _page("연계 답변 (referral answer)", f"<p>{message}</p>", status)
            # The page shows what the agency's email showed: a health service only with consent or a legal basis.
            shown[referral.id] = cases.shown_service(session, cases.find_case(session, claim.case_ref), referral, "ko")
            session.expunge(referral)
        return claim, referral

    shown: dict[int, str] = {}

    def summary(claim: links.Claim, referral: Referral) -> str:
        service = shown.get(referral.id, "")
        step = referral.step if service == service_label(referral.service, "ko") else "-"
        return (
            f"<table><tr><th align='left'>사례 (case)</th><td>{escape(claim.case_ref)}</td></tr>"
            f"<tr><th align='left'>요청 (request)</th><td>{escape(service)}</td></tr>"
            f"<tr><th align='left'>단계 (step)</th><td>{escape(step)}</td></tr>"
            f"{meeting(referral)}"
            f"<tr><th align='left'>기한 (due)</th><td>{referral.due_date.isoformat()}</td></tr>"
            f"<tr><th align='left'>현재 상태 (status)</th><td>{escape(referral.status)}</td></tr></table>"
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
            f"<tr><th align='left'>일시 (when)</th><td>{start:%Y-%m-%d %H:%M}–{end:%H:%M}</td></tr>"
            f"<tr><th align='left'>장소 (where)</th><td>{escape(place)}</td></tr>"
        )

    @app.get("/answer/{token}", response_class=HTMLResponse)
    def show(token: str) -> HTMLResponse:
        found = claim_and_referral(token)
        if isinstance(found, HTMLResponse):
            return found
        claim, referral = found
        reason = (
            "<p><label>사유·결과 (reason / outcome)<br><textarea name='reason' rows='3' cols='50'"
            f"{' required' if claim.purpose == 'decline' else ''}></textarea></label></p>"
            if claim.purpose != "accept"
            else ""
        )
        choices = "".join(f"<option value='{escape(o)}'>{escape(o)}</option>" for o in referral.outcomes)
        outcome = (
            f"<p><label>결과 (outcome)<br><select name='outcome' required>{choices}</select></label></p>"
            if claim.purpose == "done" and referral.outcomes
            else ""
        )
        form = f"<form method='post'>{outcome}{reason}<button type='submit'>{_ACTIONS[claim.purpose]}</button></form>"
        return _page("연계 답변 (referral answer)", summary(claim, referral) + form)

    @app.post("/answer/{token}", response_class=HTMLResponse)
    async def answer(token: str, request: Request) -> HTMLResponse:
        fields = await read_form(request)
        if isinstance(fields, HTMLResponse):
            return fields
        return await run_in_threadpool(record, token, *fields)

    async def read_form(request: Request) -> tuple[str, str] | HTMLResponse:
        """The reason and outcome posted, checked; or the page saying why they cannot be taken.

        Browsers post forms as UTF-8 without saying so (Starlette's form parser would assume
        latin-1), so the body is decoded here, strictly: bytes that are not UTF-8 are refused,
        not replaced.
        """
        too_large = f"<p>입력이 너무 깁니다 (the form is larger than {BODY_LIMIT} bytes)</p>"
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > BODY_LIMIT:
            return _page(_INVALID, too_large, 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > BODY_LIMIT:
                return _page(_INVALID, too_large, 413)
        try:
            fields = parse_qs(body.decode("utf-8"), errors="strict", max_num_fields=8)
            reason = clean_text(fields.get("reason", [""])[0], "사유 (reason)", REASON_MAX, multiline=True)
            outcome = clean_text(fields.get("outcome", [""])[0], "결과 (outcome)", ID_MAX)
        except UnicodeDecodeError:
            return _page(_INVALID, "<p>UTF-8 텍스트가 아닙니다 (the form is not UTF-8 text)</p>", 400)
        except TextError as error:
            return _page(_INVALID, f"<p>{escape(str(error))}</p>", 400)
        except ValueError:
            return _page(_INVALID, "<p>입력 항목이 너무 많습니다 (too many fields)</p>", 400)
        return reason, outcome

    def record(token: str, reason: str, outcome: str) -> HTMLResponse:
        found = claim_and_referral(token)
        if isinstance(found, HTMLResponse):
            return found
        claim, referral = found
        if referral.status == "failed":
            return _page(_WITHDRAWN, summary(claim, referral), 409)
        if referral.status in cases.FINAL_STATUSES or referral.status == claim.status:
            return _page("이미 처리되었습니다 (already answered)", summary(claim, referral))
        if referral.kind == conferences.INVITATION:
            return record_invitation(claim, referral, reason)
        try:
            with temporary_settings({PREFECT_API_URL: prefect_api_url}):
                steering.answer_referral(
                    db,
                    claim.case_ref,
                    referral.id,
                    status=claim.status,
                    reason=reason.strip(),
                    outcome=outcome if claim.purpose == "done" else "",
                )
        except (steering.SteeringError, cases.CaseError) as error:
            return _page("답변을 기록하지 못했습니다 (answer not recorded)", f"<p>{escape(str(error))}</p>", 409)
        return _page("답변이 전달되었습니다 (answer recorded)", summary(claim, referral))

    def record_invitation(claim: links.Claim, referral: Referral, reason: str) -> HTMLResponse:
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
                    actor=referral.agency_id,
                    at=dt.datetime.now(dt.UTC),
                )
        except cases.CaseError as error:
            return _page("답변을 기록하지 못했습니다 (answer not recorded)", f"<p>{escape(str(error))}</p>", 409)
        return _page("회신이 기록되었습니다 (answer recorded)", summary(claim, current))

    return app


class AnswerServer:
    """The answer page on loopback, served by uvicorn from a thread of the calling process."""

    def __init__(self, app: FastAPI, port: int) -> None:
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
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
