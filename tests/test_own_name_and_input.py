"""Acting only in one's own name, bad input that never kills a case, and one of each (issue 10, 6–8).

An answer link resumes only the wait of its own referral; a decision is taken by the member of
staff logged in, and an input no one signed is asked again; naming the next agency is the
coordinator's. Control characters, overlong text and bytes that are not UTF-8 are refused at
every door with a message naming the field, and the case keeps waiting. The deadline's timeout
and an agency's answer race for one wait: exactly one wins. A flow started on a case that is not
its own sends nothing.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx
import pytest
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.flow_engine import run_flow
from sqlalchemy import func, select
from typer.testing import CliRunner

from flows.hoarding.flow import hoarding
from flows.jobs.flow import job_placement
from registry import access, acts, calendar, cases, links, notes
from registry.db import Database
from registry.escalation import TIMED_OUT, Escalation
from registry.models import Agency, Approval, AuditEntry, Case, OutboxMessage, Referral
from registry.text import REASON_MAX
from tasks.escalation import escalate
from tasks.referrals import record_answer
from tests.conftest import every_backend
from tests.driving import coordinator_of, deploy_hoarding, read_run, run_once, signed_in, token_of
from tests.test_answer_links import answer_server  # noqa: F401 - the fixture
from yeongye import steering
from yeongye.cli import app
from yeongye.mailcapture import MailCapture, read_captured
from yeongye.settings import get_settings

runner = CliRunner()


NOT_AWAITED = "지금 이 링크의 답변을 기다리고 있지 않습니다"  # the answer page's 409 text


def _link(base: str, case_ref: str, referral_id: int, purpose: str = "done") -> str:
    """A genuine link to the answer page, as the referral email carries it."""
    secret = links.load_secret(get_settings().link_secret_file)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    return f"{base}/answer/{links.sign(links.Claim(case_ref, referral_id, purpose, expires), secret)}"


# Staff logging in is recorded in the audit trail; it changes no case.
_LOG_INS = ("login", "login-failed", "logout")


def _snapshot(db: Database, case_ref: str) -> tuple[Any, ...]:
    """Everything an answer could change: referrals, decisions, the audit trail (but staff logging
    in), the outbox, the wait."""
    with db.transaction() as session:
        referrals = sorted((r.step, r.agency_id, r.status, r.reason) for r in session.scalars(select(Referral)))
        approvals = sorted((a.key, a.status, a.decided_by) for a in session.scalars(select(Approval)))
        audits = session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action.not_in(_LOG_INS)))
        emails = session.scalar(select(func.count(OutboxMessage.id)))
        flow_run_id = cases.find_case(session, case_ref).flow_run_id
    state = read_run(str(flow_run_id)).state
    assert state is not None
    return referrals, approvals, audits, emails, state.type, state.state_details.pause_key


def _referral(db: Database, case_ref: str, step: str, agency_id: str) -> Referral:
    with db.transaction() as session:
        referral = cases.find_referral(session, cases.find_case(session, case_ref), step, agency_id)
        assert referral is not None
        return referral


def _open_stray_referral(db: Database, case_ref: str, step: str, agency_id: str) -> int:
    """An open referral of another step than the one the case waits on (its link is genuine)."""
    with db.transaction() as session:
        case = cases.find_case(session, case_ref)
        agency = session.get(Agency, agency_id)
        assert agency is not None
        due = calendar.today(calendar.SystemClock()) + dt.timedelta(days=7)
        return cases.open_referral(session, case, step=step, agency=agency, service="cleaning", due_date=due).id


def _refused_inputs(db: Database) -> list[tuple[str, str]]:
    """(wait, who gave it) of every input the flow refused, in order."""
    with db.transaction() as session:
        rows = session.execute(
            select(AuditEntry.detail, AuditEntry.actor)
            .where(AuditEntry.action == "invalid-input")
            .order_by(AuditEntry.id)
        ).all()
    return [(detail["wait"], actor) for detail, actor in rows]


def _log_in(monkeypatch: pytest.MonkeyPatch, db: Database, staff_id: str) -> None:
    """The CLI from here on runs as ``staff_id``, logged in."""
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(db, staff_id))


def _sign(db: Database, case_ref: str, wait_key: str, actor: str) -> int:
    """An act signed by ``actor`` for ``wait_key`` of the case, as steering signs an input."""
    with db.transaction() as session:
        return acts.sign(session, cases.find_case(session, case_ref), wait_key, actor)


def _pause_key(flow_run_id: str, flow: Flow[..., Any] = hoarding) -> str | None:
    state = run_once(flow_run_id, flow).state
    assert state is not None and state.is_paused(), state
    return state.state_details.pause_key


def _hoarding_at_assessment(registry: Database, complex_code: str, resident: str) -> tuple[str, str, Referral]:
    """A hoarding case launched and run to its first wait: (case ref, flow run id, gaon-cc-1's referral)."""
    deploy_hoarding()
    launched = steering.launch(
        registry,
        intervention="hoarding",
        complex_code=complex_code,
        resident_ref=resident,
        by=coordinator_of(registry, complex_code),
    )
    assert _pause_key(launched.flow_run_id) == "answer-assessment-1"
    return launched.case_ref, launched.flow_run_id, _referral(registry, launched.case_ref, "assessment", "gaon-cc-1")


def test_a_link_answers_only_its_own_referral(
    prefect_server: None,
    registry: Database,
    mail: MailCapture,
    answer_server: str,  # noqa: F811 - the imported fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref, run, cc1 = _hoarding_at_assessment(registry, "F", "R-F-002")
    _log_in(monkeypatch, registry, "coord-f")  # the case's coordinator works the command line

    # A link of another step (cleaning) while the case waits on the assessment: refused, nothing changes.
    stray = _open_stray_referral(registry, ref, "cleaning", "gaon-cleancoop-1")
    before = _snapshot(registry, ref)
    refused = httpx.post(_link(answer_server, ref, stray), data={"reason": "완료"}, timeout=60)
    assert refused.status_code == 409 and "답변을 기록하지 못했습니다" in refused.text
    # The public page says only that this link is not awaited: no step, agency or wait is named.
    assert NOT_AWAITED in refused.text and "cleaning" not in refused.text
    assert _snapshot(registry, ref) == before

    # The 관리사무소 declines (by phone; the coordinator records it) and none other is left: the
    # coordinator is asked to name one.
    declined = runner.invoke(
        app, ["respond", ref, "--agency", "gaon-mgmt-1", "--status", "rejected", "--reason", "인력 없음"]
    )
    assert declined.exit_code == 0, declined.output
    reroute_key = "reroute-assessment-management-office-1"
    assert _pause_key(run) == reroute_key

    # The 행정복지센터's "done" link cannot be taken for the coordinator's choice of an agency.
    before = _snapshot(registry, ref)
    link = _link(answer_server, ref, cc1.id)
    refused = httpx.post(link, data={"reason": "방문 완료"}, timeout=60)
    assert refused.status_code == 409 and NOT_AWAITED in refused.text and reroute_key not in refused.text
    assert _snapshot(registry, ref) == before
    # Neither can an agency's answer at the command line.
    agency_cli = runner.invoke(app, ["respond", ref, "--agency", "gaon-cc-1", "--status", "completed"])
    assert agency_cli.exit_code == 2 and "yeongye reroute" in agency_cli.output, agency_cli.output
    assert _snapshot(registry, ref) == before

    # The coordinator's own command names the agency or skips, and the decision is recorded as theirs.
    both = runner.invoke(app, ["reroute", ref, "--agency", "gaon-mgmt-1", "--skip"])
    assert both.exit_code == 2 and "--skip" in both.output
    unknown = runner.invoke(app, ["reroute", ref, "--agency", "nobody"])
    assert unknown.exit_code == 2 and "--agency" in unknown.output
    skipped = runner.invoke(app, ["reroute", ref, "--skip", "--reason", "다른 기관 없음"])
    assert skipped.exit_code == 0, skipped.output
    assert _pause_key(run) == "answer-assessment-2"
    with registry.transaction() as session:
        approval = session.scalar(select(Approval).where(Approval.key == reroute_key))
        assert approval is not None and (approval.status, approval.decided_by) == ("rejected", "coord-f")

    # An answer, signed, that names another referral than the one of its step and agency is
    # invalid: asked again.
    wait = steering.current_wait(registry, ref)
    answer = {"agency_id": "gaon-cc-1", "status": "completed", "referral_id": stray}
    steering._resume(wait, {**answer, "act": _sign(registry, ref, wait.key, "coord-f")})
    assert _pause_key(run) == "answer-assessment-3"
    assert _refused_inputs(registry) == [("answer-assessment-2", "coord-f")]
    assert _referral(registry, ref, "assessment", "gaon-cc-1").status == "requested"

    # Now the link is the one the case waits for; the answer is recorded in the name of the
    # agency's own link (its referral).
    answered = httpx.post(link, data={"reason": "방문 완료"}, timeout=60)
    assert answered.status_code == 200, answered.text
    run_once(run)
    with registry.transaction() as session:
        assert session.get(Referral, cc1.id).status == "completed"  # type: ignore[union-attr]
        actors = session.execute(
            select(AuditEntry.actor, AuditEntry.detail).where(AuditEntry.action == "referral-answered")
        ).all()
    assert {(actor, detail["agency"], detail["status"]) for actor, detail in actors} == {
        ("coord-f", "gaon-mgmt-1", "rejected"),
        (acts.link_actor(cc1.id), "gaon-cc-1", "completed"),
    }


@every_backend
def test_a_decision_names_who_took_it_and_no_link_answers_it(
    prefect_server: None,
    registry: Database,
    mail: MailCapture,
    answer_server: str,  # noqa: F811 - the imported fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A job placement whose resident's facts are unknown: after consent, the coordinator's decision.
    job_placement.to_deployment(name=job_placement.name).apply()
    coordinator = coordinator_of(registry, "B")
    launched = steering.launch(
        registry, intervention="job-placement", complex_code="B", resident_ref="R-B-001", by=coordinator
    )
    ref, run = launched.case_ref, launched.flow_run_id
    assert _pause_key(run, job_placement) == "consent-1"
    steering.approve(registry, ref, approved=True, by=coordinator)
    assert _pause_key(run, job_placement) == "decision-job-facts-1-1"

    # A genuine link of another referral of the case, while the case waits for a decision: refused.
    stray = _open_stray_referral(registry, ref, "cleaning", "gaon-cleancoop-1")
    before = _snapshot(registry, ref)
    refused = httpx.post(_link(answer_server, ref, stray), timeout=60)
    assert refused.status_code == 409 and NOT_AWAITED in refused.text and "job" not in refused.text
    # Without a log-in, a decision is refused at the command line; so it is with a token that opens
    # no session.
    monkeypatch.delenv("YEONGYE_TOKEN", raising=False)
    unnamed = runner.invoke(app, ["approve", ref])
    assert unnamed.exit_code == 2 and "yeongye login" in unnamed.output, unnamed.output
    monkeypatch.setenv("YEONGYE_TOKEN", "yg1_not-a-session")
    forged = runner.invoke(app, ["approve", ref])
    assert forged.exit_code == 2 and "yeongye login" in forged.output, forged.output
    # Staff of another centre, or of the central centre (which reads only), decide nothing here.
    for outsider in ("coord-d", "supervisor-1", "central-1"):
        with pytest.raises(access.AccessDenied):
            steering.approve(registry, ref, approved=True, by=signed_in(registry, outsider))
    # Nor is a reason that is not fit to store taken from the case's own coordinator.
    _log_in(monkeypatch, registry, "coord-b")
    for args in (["--reject", "--reason", "사유\x07"], ["--reject", "--reason", "가" * 10_000]):
        result = runner.invoke(app, ["approve", ref, *args])
        assert result.exit_code == 2 and "--reason: " in result.output, result.output
    assert _snapshot(registry, ref) == before

    # The Prefect form sent unsigned: the flow does not take it for the approver's, it asks again,
    # and records it as given by no one known.
    wait = steering.current_wait(registry, ref)
    steering._resume(wait, {"approved": True})
    assert _pause_key(run, job_placement) == "decision-job-facts-1-2"
    # An act signed for another wait (the one just refused) does not sign this one either.
    wait = steering.current_wait(registry, ref)
    steering._resume(wait, {"approved": True, "act": _sign(registry, ref, "decision-job-facts-1-1", "coord-b")})
    assert _pause_key(run, job_placement) == "decision-job-facts-1-3"
    assert _refused_inputs(registry) == [
        ("decision-job-facts-1-1", "unsigned"),
        ("decision-job-facts-1-2", "unsigned"),
    ]
    with registry.transaction() as session:
        approval = session.scalar(select(Approval).where(Approval.key == "decision-job-facts-1"))
        assert approval is not None and approval.status == "requested" and approval.decided_by is None

    named = runner.invoke(app, ["approve", ref])
    assert named.exit_code == 0, named.output
    assert _pause_key(run, job_placement) == "decision-job-facts-2-1"  # the facts are still unknown
    with registry.transaction() as session:
        approval = session.scalar(select(Approval).where(Approval.key == "decision-job-facts-1"))
        assert approval is not None and (approval.status, approval.decided_by) == ("approved", "coord-b")


@every_backend
def test_bad_input_is_refused_at_every_door_and_the_case_keeps_waiting(
    prefect_server: None,
    registry: Database,
    mail: MailCapture,
    answer_server: str,  # noqa: F811 - the imported fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref, run, cc1 = _hoarding_at_assessment(registry, "E", "R-E-001")
    _log_in(monkeypatch, registry, "coord-e")
    link = _link(answer_server, ref, cc1.id, "decline")
    before = _snapshot(registry, ref)
    too_long = "가" * 10_000

    # The answer page: NUL, a reason of 10,000 characters, bytes that are not UTF-8, an oversized form.
    posts: list[tuple[dict[str, str] | bytes, int, str]] = [
        ({"reason": "방문\x00불가"}, 400, "사유 (reason): 제어 문자는 쓸 수 없습니다"),
        ({"reason": "a" * 10_000}, 400, f"사유 (reason): {REASON_MAX}자 이내여야 합니다"),
        ({"reason": too_long}, 413, "입력이 너무 깁니다"),  # 90 kB once the browser has encoded it
        (b"reason=\xff\xfe", 400, "UTF-8 텍스트가 아닙니다"),
        (b"reason=%FF%FE", 400, "UTF-8 텍스트가 아닙니다"),
    ]
    for body, status, says in posts:
        if isinstance(body, bytes):
            posted = httpx.post(link, content=body, timeout=60)
        else:
            posted = httpx.post(link, data=body, timeout=60)
        assert posted.status_code == status and says in posted.text, (status, posted.text[:300])

    # The command line names the option (or the case argument); nothing is resumed.
    respond = ["respond", ref, "--agency", "gaon-cc-1", "--status", "rejected", "--reason"]
    for args, says in [
        ([*respond, "인력 없음\x00"], "--reason: 제어 문자는 쓸 수 없습니다"),
        ([*respond, too_long], f"--reason: {REASON_MAX}자 이내여야 합니다"),
        (["respond", "C-2026\x00", "--agency", "gaon-cc-1", "--status", "completed"], "case: 제어 문자"),
        (["jobs", "facts", "C-\x00", "--basic-pension"], "case: 제어 문자"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and says in result.output, result.output

    # The same form sent straight to Prefect is refused on the server by the form's schema: it takes
    # a note's number, never text.
    wait = steering.current_wait(registry, ref)
    for reason in ("방문\x00불가", too_long):
        with pytest.raises(steering.SteeringError, match="재개할 수 없습니다"):
            steering._resume(wait, {"agency_id": "gaon-cc-1", "status": "rejected", "reason_note": reason})
    assert _snapshot(registry, ref) == before
    assert _pause_key(run) == "answer-assessment-1"

    # A note number, in a signed input, that is not this case's reason: audited, asked again.
    with registry.transaction() as session:
        case = cases.find_case(session, ref)
        place = notes.write(session, case, kind=notes.PLACE, text="회의실", by=case.coordinator_id)
    act = _sign(registry, ref, "answer-assessment-1", "coord-e")
    recorded = record_answer.fn(  # type: ignore[attr-defined]
        ref, "assessment", "gaon-cc-1", "rejected", place, "answer-assessment-1", act=act
    )
    assert recorded == "invalid" and _refused_inputs(registry) == [("answer-assessment-1", "coord-e")]
    assert _referral(registry, ref, "assessment", "gaon-cc-1").status == "requested"


def test_a_form_the_flow_cannot_load_is_asked_again(
    prefect_server: None, registry: Database, mail: MailCapture
) -> None:
    """Prefect's server checks the schema's pattern with Python's ``re``, whose ``$`` lets one
    trailing newline through; the flow's own model refuses it, audits it and asks again."""
    ref, run, _cc1 = _hoarding_at_assessment(registry, "D", "R-D-003")
    coordinator = signed_in(registry, "coord-d")
    steering.respond(registry, ref, agency_id="gaon-mgmt-1", status="rejected", reason="인력 없음", by=coordinator)
    assert _pause_key(run) == "reroute-assessment-management-office-1"
    # The coordinator's choice of the next agency, signed, with a newline after the agency's id.
    wait = steering.current_wait(registry, ref)
    steering._resume(wait, {"agency_id": "gaon-mgmt-1\n", "act": _sign(registry, ref, wait.key, "coord-d")})
    assert _pause_key(run) == "reroute-assessment-management-office-2"
    with registry.transaction() as session:
        refused = session.scalar(select(AuditEntry.detail).where(AuditEntry.action == "invalid-input"))
    assert refused is not None and refused["wait"] == "reroute-assessment-management-office-1"
    assert "agency_id" in refused["error"] and "gaon-mgmt-1" not in refused["error"]


def test_answer_and_final_timeout_on_one_wait_exactly_one_wins(
    prefect_server: None,
    registry: Database,
    mail: MailCapture,
    answer_server: str,  # noqa: F811 - the imported fixture
) -> None:
    ref, run, cc1 = _hoarding_at_assessment(registry, "C", "R-C-002")
    mgmt1 = _referral(registry, ref, "assessment", "gaon-mgmt-1")

    # The agency answers first; the sweep, working from its earlier list, comes right after: it defers.
    answered = httpx.post(_link(answer_server, ref, cc1.id), data={"reason": "방문 완료"}, timeout=60)
    assert answered.status_code == 200 and "답변이 전달되었습니다" in answered.text
    assert escalate.fn(Escalation("referral", cc1.id, ref, TIMED_OUT)) == "deferred"  # type: ignore[attr-defined]
    assert _pause_key(run) == "answer-assessment-2"
    # Even with the case waiting again, that wait is not for this referral: still nothing.
    assert escalate.fn(Escalation("referral", cc1.id, ref, TIMED_OUT)) == "deferred"  # type: ignore[attr-defined]

    # The timeout comes first; the agency answers right after: its request was withdrawn, and it is told so.
    assert escalate.fn(Escalation("referral", mgmt1.id, ref, TIMED_OUT)) == "timed-out"  # type: ignore[attr-defined]
    late = httpx.post(_link(answer_server, ref, mgmt1.id), data={"reason": "점검 완료"}, timeout=60)
    assert late.status_code == 409 and "철회" in late.text
    assert _pause_key(run) == "reroute-assessment-management-office-1"

    with registry.transaction() as session:
        statuses = {
            r.agency_id: r.status for r in session.scalars(select(Referral).where(Referral.step == "assessment"))
        }
        answers = session.execute(
            select(AuditEntry.actor, AuditEntry.detail).where(AuditEntry.action == "referral-answered")
        ).all()
    assert statuses == {"gaon-cc-1": "completed", "gaon-mgmt-1": "failed"}
    assert sorted((actor, detail["status"]) for actor, detail in answers) == [
        ("deadline-sweep", "failed"),
        (acts.link_actor(cc1.id), "completed"),
    ]
    withdrawn = [
        m.headers["X-Yeongye-Key"] for m in read_captured(mail.mail_dir) if "timed-out" in m.headers["X-Yeongye-Key"]
    ]
    assert withdrawn == [f"{ref}:assessment-gaon-mgmt-1-timed-out:gaon-mgmt-1"]


def test_a_flow_runs_only_on_its_own_case(prefect_server: None, registry: Database, mail: MailCapture) -> None:
    """The Prefect UI's Run form of the hoarding deployment, given another intervention's open case,
    or a hoarding case that has its own run: the run fails at once and nothing is sent or changed."""
    deployment_id = deploy_hoarding()
    with registry.transaction() as session:
        counselling = cases.open_case(
            session,
            intervention="mh-counselling",
            complex_code="A",
            resident_ref="R-A-001",
            opened_at=calendar.SystemClock().now(),
            by="coord-a",
        ).ref
    launched = steering.launch(
        registry, intervention="hoarding", complex_code="A", resident_ref="R-A-002", by=coordinator_of(registry, "A")
    )
    assert _pause_key(launched.flow_run_id) == "answer-assessment-1"
    sent = len(read_captured(mail.mail_dir))

    for case_ref, code in [
        (counselling, "wrong-intervention"),
        (launched.case_ref, "another-run"),
        ("C-2026-9999", "unknown-case"),
    ]:
        before = _case_row(registry, case_ref)
        with get_client(sync_client=True) as client:
            flow_run = client.create_flow_run_from_deployment(deployment_id, parameters={"case_ref": case_ref})
        state = run_flow(hoarding, flow_run=flow_run, parameters=flow_run.parameters, return_type="state")
        assert isinstance(state, State)
        assert state.is_failed() and code in (state.message or ""), state
        assert re.search(r"R-A-00\d", state.message or "") is None
        assert _case_row(registry, case_ref) == before
    assert len(read_captured(mail.mail_dir)) == sent
    assert read_run(launched.flow_run_id).state.state_details.pause_key == "answer-assessment-1"  # type: ignore[union-attr]


def _case_row(db: Database, case_ref: str) -> tuple[Any, ...] | None:
    with db.transaction() as session:
        case = session.scalar(select(Case).where(Case.ref == case_ref))
        audits = session.scalar(select(func.count(AuditEntry.id)))
        if case is None:
            return None, audits
        return case.status, case.stage, case.flow_run_id, audits


def test_a_supervisors_decision_is_refused_to_a_coordinator_and_to_an_unknown_name(registry: Database) -> None:
    """Closing a case is the supervisor's: a coordinator's or a made-up name's decision changes nothing."""
    now = calendar.SystemClock().now()
    # Complex A is centre gaon-1's, whose supervisor is supervisor-2.
    with registry.transaction() as session:
        case = cases.open_case(
            session, intervention="hoarding", complex_code="A", resident_ref="R-A-001", opened_at=now, by="coord-a"
        )
        closure = cases.request_approval(
            session, case, key="decision-closure-1", kind="closure", approver_id="supervisor-2", due_date=now.date()
        )
        visit = cases.request_approval(
            session, case, key="decision-visit-1", kind="visit", approver_id="coord-a", due_date=now.date()
        )
    for by, refused in (("coord-a", "수퍼바이저"), ("nobody-1", "등록되지 않은")):
        with registry.transaction() as session, pytest.raises(cases.CaseError, match=refused):
            case, approval = cases.find_case(session, case.ref), session.get(Approval, closure.id)
            assert approval is not None
            cases.decide(session, case, approval, approved=True, reason="", by=by, at=now)
    with registry.transaction() as session:
        case = cases.find_case(session, case.ref)
        for approval_id, by in ((closure.id, "supervisor-2"), (visit.id, "supervisor-2")):
            approval = session.get(Approval, approval_id)
            assert approval is not None and approval.status == "requested"  # nothing was decided above
            cases.decide(session, case, approval, approved=True, reason="", by=by, at=now)
            assert approval.status == "approved" and approval.decided_by == "supervisor-2"
