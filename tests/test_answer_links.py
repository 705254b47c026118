"""Agencies answer from the email: signed links, served over HTTP, resume the waiting flow."""

from __future__ import annotations

import datetime as dt
import re
import socket
from collections.abc import Iterator

import httpx
import pytest
from prefect.settings import PREFECT_API_URL
from sqlalchemy import func, select

from registry import acts, links
from registry.db import Database
from registry.models import AuditEntry, Referral
from tests.driving import coordinator_of, deploy_hoarding, read_run, run_once
from yeongye import steering
from yeongye.answers import AnswerServer, create_app
from yeongye.mailcapture import MailCapture, read_captured
from yeongye.settings import get_settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def answer_server(registry: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = _free_port()
    monkeypatch.setenv("YEONGYE_ANSWER_PORT", str(port))
    server = AnswerServer(create_app(get_settings(), registry, str(PREFECT_API_URL.value())), port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _link(mail: MailCapture, recipient: str, label: str) -> str:
    message = next(m for m in read_captured(mail.mail_dir) if recipient in m.to)
    found = re.search(rf"{label}: (http://\S+)", message.text)
    assert found, message.text
    return found.group(1)


def _state(registry: Database) -> tuple[dict[tuple[str, str], str], int]:
    with registry.transaction() as session:
        statuses = {(r.step, r.agency_id): r.status for r in session.scalars(select(Referral))}
        return statuses, session.scalar(select(func.count(AuditEntry.id))) or 0


def test_done_link_advances_the_flow_and_bad_links_change_nothing(
    prefect_server: None, registry: Database, mail: MailCapture, answer_server: str
) -> None:
    deploy_hoarding()
    launched = steering.launch(
        registry, intervention="hoarding", complex_code="F", resident_ref="R-F-001", by=coordinator_of(registry, "F")
    )
    assert run_once(launched.flow_run_id).state.is_paused()  # type: ignore[union-attr]
    done = _link(mail, "cc1@example.org", "완료 보고")
    assert done.startswith(answer_server)

    page = httpx.get(done)
    assert page.status_code == 200 and launched.case_ref in page.text and "완료를 보고합니다" in page.text
    assert "R-F-001" not in page.text

    # Refused links: a forged signature, an expired link, a link of another case for this referral.
    secret = links.load_secret(get_settings().link_secret_file)
    referral_id = links.verify(done.rsplit("/", 1)[1], secret, dt.datetime.now(dt.UTC)).referral_id
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    refused = {
        done[:-2] + ("AA" if not done.endswith("AA") else "BB"): 403,
        f"{answer_server}/answer/{links.sign(links.Claim(launched.case_ref, referral_id, 'done', past), secret)}": 410,
        f"{answer_server}/answer/{links.sign(links.Claim('C-2026-9999', referral_id, 'done', later), secret)}": 403,
    }
    before = _state(registry)
    for url, status in refused.items():
        assert httpx.post(url, data={"reason": "x"}).status_code == status
        assert httpx.get(url).status_code == status
    assert _state(registry) == before
    assert read_run(launched.flow_run_id).state.is_paused()  # type: ignore[union-attr]

    answered = httpx.post(done, data={"reason": "방문 완료"}, timeout=60)
    assert answered.status_code == 200 and "답변이 전달되었습니다" in answered.text
    flow_run = run_once(launched.flow_run_id)
    assert flow_run.state.is_paused() and flow_run.state.state_details.pause_key == "answer-assessment-2"  # type: ignore[union-attr]
    statuses, audits = _state(registry)
    assert statuses[("assessment", "gaon-cc-1")] == "completed"
    with registry.transaction() as session:
        assert session.scalar(select(Referral.reason).where(Referral.agency_id == "gaon-cc-1")) == "방문 완료"
        # The answer is the link's own: recorded as signed by it, not in a member of staff's name.
        answered_by = session.scalars(select(AuditEntry.actor).where(AuditEntry.action == "referral-answered"))
        assert list(answered_by) == [acts.link_actor(referral_id)]

    again = httpx.post(done, data={"reason": "두 번째"}, timeout=60)
    assert again.status_code == 200 and "이미 처리되었습니다" in again.text
    assert _state(registry) == (statuses, audits)
    wait = steering.current_wait(registry, launched.case_ref)
    assert wait.key == "answer-assessment-2" and wait.agencies == ["gaon-mgmt-1"]
