"""Crisis admissions with exact legal clocks (정신건강복지법 §44, §50), and aftercare (§52).

Cases run in-process against the real Prefect server and SMTP capture, with an injected clock;
the deadline sweep runs in-process on the days a legal clock reaches a rung. Every date asserted
below is computed by hand in a comment next to it (holidays from ``holidays`` KR, checked).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prefect import Flow, flow
from prefect.client.orchestration import get_client
from sqlalchemy import select
from typer.testing import CliRunner

from flows.deadlines.flow import deadlines
from flows.mental_health.administrative import administrative_admission
from flows.mental_health.aftercare import aftercare
from flows.mental_health.emergency import emergency_admission
from registry import cases, mental_health
from registry.access import Principal
from registry.calendar import SEOUL, BusinessCalendar, FixedClock, SystemClock
from registry.catalog import HEALTH_SERVICES, SERVICES
from registry.db import Database
from registry.mental_health import SceneEntry
from registry.models import Approval, AuditEntry, Case, Consent, Note, Referral, Resident
from tasks import runtime
from tasks.case import check_case, enter_stage, publish_timeline
from tasks.handoffs import Need, ask, await_outcome
from tasks.referrals import record_legal_basis
from templates import render
from tests.conftest import every_backend
from tests.driving import assert_not_in_prefect, coordinator_of, read_case, run_once, signed_in, token_of
from yeongye import cli, steering
from yeongye.cli import app
from yeongye.mailcapture import CapturedMail, MailCapture, read_captured

KR = BusinessCalendar()
D = dt.date
runner = CliRunner()


# --- the clocks, by hand ---------------------------------------------------------------------


def test_administrative_clocks_count_the_first_day() -> None:
    clock = mental_health.administrative_clock(KR, D(2026, 1, 5))  # a Monday
    assert clock.diagnostic_end == D(2026, 1, 18)  # 14 days with 01-05 counted: Sun 01-18
    assert clock.report_due == D(2026, 1, 8)  # 3 business days after: Tue 6, Wed 7, Thu 8
    assert clock.committee_due == D(2026, 2, 4)  # 1 month from 01-05 ends 02-04
    assert clock.release_due == D(2026, 4, 4)  # 3 months from 01-05 end on Sat 04-04 (no move to Monday)

    # 설 2026 is Mon 02-16..Wed 02-18: from Thu 02-12, Fri 13 (1), Thu 19 (2), Fri 20 (3).
    assert mental_health.appropriateness_report_due(KR, D(2026, 2, 12)) == D(2026, 2, 20)
    # Month ends (민법 §160③): from 11-30, "1 month" ends 12-29; "3 months" has no 02-30 and ends 2027-02-28.
    late = mental_health.administrative_clock(KR, D(2026, 11, 30))
    assert (late.committee_due, late.release_due) == (D(2026, 12, 29), D(2027, 2, 28))


def test_extensions_start_the_day_after_and_last_three_then_six_months() -> None:
    # First extension: from Sun 04-05, 3 months end 07-04. Second: from 07-05, 6 months end 2027-01-04.
    assert mental_health.extension_end(D(2026, 4, 4), 1) == D(2026, 7, 4)
    assert mental_health.extension_end(D(2026, 7, 4), 2) == D(2027, 1, 4)
    with pytest.raises(ValueError):
        mental_health.extension_end(D(2026, 4, 4), 0)
    # "즉시" for an office: the next business day (Fri 09-18 → Mon 09-21; Wed 09-23 → Mon 09-28 after 추석).
    assert mental_health.without_delay(KR, D(2026, 9, 18)) == D(2026, 9, 21)
    assert mental_health.without_delay(KR, D(2026, 9, 23)) == D(2026, 9, 28)


@pytest.mark.parametrize("language", ["ko", "en"])
def test_notices_hold_reason_period_and_place_only(language: str) -> None:
    facts = dict(provision="정신건강복지법 §50⑥", first_day="2026-09-23", first_weekday="수")
    facts |= dict(last_day="2026-09-30", last_weekday="수", place="가온정신건강의학과의원")
    title, text, html = render("notice_guardian", language, reason="emergency-admission", **facts)
    assert "§50⑥" in title and "2026-09-23" in text and "2026-09-30" in text and "가온정신건강의학과의원" in html
    # How the period was counted, named in either language.
    assert mental_health.EMERGENCY_HOLD_BASIS in text and mental_health.EMERGENCY_HOLD_BASIS in html
    _title, text, _html = render("notice_guardian", language, reason="diagnostic-admission", **facts)
    assert "정신건강복지법 §44④, 행정기본법 §6② 초일 산입" in text
    title, text, _html = render("notice_admission", language, reason="treatment-admission", **facts)
    assert "55" in text and "59" in text and "가온정신건강의학과의원" not in text  # §44⑧ asks no place
    assert "정신건강복지법 §62①, 행정기본법 §6② 초일 산입" in text
    _title, text, _html = render("notice_admission", language, reason="extension", **facts)
    assert "정신건강복지법 §62②, 행정기본법 §6② 초일 산입" in text


# --- driving a case ----------------------------------------------------------------------------


@pytest.fixture
def clock() -> Iterator[FixedClock]:
    fixed = FixedClock(dt.datetime(2026, 1, 5, 10, 0, tzinfo=SEOUL))
    runtime.use_clock(fixed)
    yield fixed
    runtime.use_clock(SystemClock())


def at(clock: FixedClock, day: dt.date, time: dt.time = dt.time(10, 0)) -> None:
    clock.at = dt.datetime.combine(day, time, SEOUL)


@dataclass
class People:
    """How the people around the case answer: agencies by step, decisions by key, the consent."""

    db: Database
    flow: Flow[..., Any]
    case_ref: str
    flow_run_id: str
    outcomes: dict[str, str] = field(default_factory=dict)  # step -> outcome reported with "completed"
    decisions: dict[str, bool] = field(default_factory=dict)  # decision name -> approved
    consent: bool = True
    scene: SceneEntry | None = None  # what the coordinator records of the scene (emergency admission)
    scene_reason: str = ""
    waits: list[str] = field(default_factory=list)

    @functools.cached_property
    def coordinator(self) -> Principal:
        """The case's coordinator, logged in: who records the agencies' answers and the consent."""
        return signed_in(self.db, read_case(self.db, self.case_ref).coordinator_id)

    @functools.cached_property
    def supervisor(self) -> Principal:
        """The case's supervisor, logged in: who takes the decisions."""
        return signed_in(self.db, read_case(self.db, self.case_ref).supervisor_id)

    def run(self, *, until: Callable[[steering.Wait], bool] = lambda wait: False) -> steering.Wait | None:
        """Answer each wait until ``until`` holds (returns it) or the case ends (returns None)."""
        for _ in range(40):
            state = run_once(self.flow_run_id, self.flow).state
            if state is not None and state.is_final():
                assert state.is_completed(), state
                return None
            wait = steering.current_wait(self.db, self.case_ref)
            if until(wait):
                return wait
            self.answer(wait)
        raise AssertionError(f"case did not settle: {self.waits[-5:]}")

    def answer(self, wait: steering.Wait) -> None:
        self.waits.append(wait.key)
        if wait.kind == "answer":
            steering.respond(
                self.db,
                self.case_ref,
                agency_id=wait.agencies[0],
                status="completed",
                reason="완료",
                outcome=self.outcomes.get(wait.step, ""),
                by=self.coordinator,
            )
        elif wait.kind == "decision":
            name = wait.key.removeprefix("decision-").rsplit("-", 1)[0]
            approved = self.decisions.get(name, True)
            steering.approve(
                self.db, self.case_ref, approved=approved, reason="" if approved else "해당 없음", by=self.supervisor
            )
        elif wait.kind == "consent":
            steering.approve(
                self.db,
                self.case_ref,
                approved=self.consent,
                reason="" if self.consent else "거부",
                by=self.coordinator,
            )
        elif wait.kind == "scene":
            assert self.scene is not None, "the test gives no on-scene record"
            steering.record_emergency_scene(
                self.db, self.case_ref, entry=self.scene, reason=self.scene_reason, by=self.coordinator
            )
        else:
            raise AssertionError(f"unexpected wait {wait.key}")

    def sweep(self) -> dict[str, int]:
        """The deadline sweep, then the case's own run (which a timed-out answer resumed)."""
        taken = deadlines()
        run_once(self.flow_run_id, self.flow)
        return taken


def launch(db: Database, flow: Flow[..., Any], complex_code: str, resident_ref: str, **answers: Any) -> People:
    flow.to_deployment(name=flow.name).apply()
    launched = steering.launch(
        db,
        intervention=flow.name,
        complex_code=complex_code,
        resident_ref=resident_ref,
        by=coordinator_of(db, complex_code),
    )
    return People(db, flow, launched.case_ref, launched.flow_run_id, **answers)


def waiting_on(step: str) -> Callable[[steering.Wait], bool]:
    return lambda wait: wait.kind == "answer" and wait.step == step


def referrals(db: Database, case_ref: str) -> dict[str, Referral]:
    with db.transaction() as session:
        case = cases.find_case(session, case_ref)
        rows = session.scalars(select(Referral).where(Referral.case_id == case.id)).all()
        for row in rows:
            session.expunge(row)
    return {row.step: row for row in rows}


def stages(db: Database, case_ref: str) -> list[str]:
    """The stages the case went through, in order (from the audit trail)."""
    with db.transaction() as session:
        case = cases.find_case(session, case_ref)
        details = session.scalars(
            select(AuditEntry.detail)
            .where(AuditEntry.case_id == case.id, AuditEntry.action == "stage")
            .order_by(AuditEntry.id)
        ).all()
    return [d["stage"] for d in details]


def closed(db: Database, case_ref: str) -> tuple[str, str | None]:
    with db.transaction() as session:
        case = session.scalar(select(Case).where(Case.ref == case_ref))
        assert case is not None
        return case.status, case.outcome


def emails(mail: MailCapture, step: str, to: str) -> list[CapturedMail]:
    return [m for m in read_captured(mail.mail_dir) if m.headers["X-Yeongye-Key"].split(":")[1] == step and to in m.to]


def notice_text(message: CapturedMail) -> str:
    """The notice the agency hands on: the part of the email between the two rules."""
    return message.text.split("-" * 40)[1]


# --- 응급입원 (§50) --------------------------------------------------------------------------


def test_admitted_at_2340_on_a_saturday_the_hold_counts_that_saturday(
    prefect_server: None, registry: Database, mail: MailCapture, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    at(clock, D(2026, 9, 19), dt.time(23, 50))  # Saturday night: the coordinator opens the case from the scene
    people = launch(registry, emergency_admission, "A", "R-A-001", outcomes={"hold": "converted-guardian"})
    wait = people.run(until=lambda wait: wait.kind == "scene")
    assert wait is not None and wait.key == "scene-1"
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-a"))
    monkeypatch.setattr(cli.console, "width", 400)  # one line per row, however long the basis
    shown = runner.invoke(app, ["case", people.case_ref])
    assert shown.exit_code == 0 and "대기 중 (waiting for): on-scene (~" in shown.output, shown.output

    # The coordinator records it all after midnight, at once: the hold still runs from Saturday 23:40.
    at(clock, D(2026, 9, 20), dt.time(0, 30))
    scene_options = ["--requested", "2026-09-19 23:05", "--doctor", "2026-09-19 23:15", "--police", "gaon-police-1"]
    scene_options += ["--police-consent", "2026-09-19 23:20", "--escort", "police", "--hospital", "gaon-hospital-1"]
    late = runner.invoke(app, ["emergency", "scene", people.case_ref, *scene_options, "--admitted", "2026-09-20 00:40"])
    assert late.exit_code == 2 and "admitted_at (--admitted)" in late.output  # 10 minutes ahead: refused, nothing sent
    recorded = runner.invoke(
        app, ["emergency", "scene", people.case_ref, *scene_options, "--admitted", "2026-09-19 23:40"]
    )
    assert recorded.exit_code == 0, recorded.output
    # Sat 09-19 (1), Sun 20 out, Mon 21 (2), Tue 22 (3): not Wed 23, as counting from the next day would give.
    assert (
        "보호 기한 (hold ends): 2026-09-22 (화) 24:00 · 정신건강복지법 §50③, 행정기본법 §6② 초일 산입"
        in recorded.output
    )

    assert people.run(until=waiting_on("hold")) is not None
    found = referrals(registry, people.case_ref)
    hold, notice = found["hold"], found["guardian-notice"]
    assert (hold.agency_id, hold.due_date, hold.legal_basis) == (
        "gaon-hospital-1",
        D(2026, 9, 22),
        "정신건강복지법 §50③, 행정기본법 §6② 초일 산입",
    )
    assert (notice.agency_id, notice.due_date, notice.legal_basis) == (
        "gaon-hospital-1",
        D(2026, 9, 20),  # the day after the admission, a Sunday
        "정신건강복지법 §50⑥",
    )
    assert set(found) == {"guardian-notice", "hold"}  # the police acted at the scene: no referral, no email

    # The §50⑥ notice gives the period and how it was counted; nothing about the person.
    with registry.transaction() as session:
        resident = session.get(Resident, "R-A-001")
        assert resident is not None
        name = resident.name
        approvals = session.scalars(select(Approval.key)).all()
    assert approvals == []  # nothing at the scene was a decision due days later
    [message] = emails(mail, "guardian-notice", "hospital1@example.org")
    assert name in message.text and "정신건강복지법 §50에 따라 제공되는 정보" in message.text
    notice_part = notice_text(message)
    assert "입원 사실 통지서 (정신건강복지법 §50⑥)" in notice_part
    assert "2026-09-19 (토) ~ 2026-09-22 (화)" in notice_part and "가온정신건강의학과의원" in notice_part
    assert "기간 계산: 정신건강복지법 §50③, 행정기본법 §6② 초일 산입" in notice_part
    assert name not in notice_part and resident.phone not in notice_part

    # `yeongye case` shows the hold's due date with its basis, and the record with its times.
    shown = runner.invoke(app, ["case", people.case_ref])
    assert shown.exit_code == 0 and "2026-09-22 · 정신건강복지법 §50③, 행정기본법 §6② 초일 산입" in shown.output
    timeline = json.loads(runner.invoke(app, ["case", people.case_ref, "--json"]).output)
    assert {k: timeline["on_scene"][k] for k in ("admitted_at", "hold_end", "escort_agency", "outcome")} == {
        "admitted_at": "2026-09-19T23:40:00+09:00",
        "hold_end": "2026-09-22",
        "escort_agency": "gaon-police-1",  # the consenting officer escorts (§50②)
        "outcome": "admitted",
    }

    assert people.run() is None
    assert closed(registry, people.case_ref) == ("closed", "converted-guardian")
    assert [k.rsplit("-", 1)[0] for k in people.waits] == ["answer-guardian-notice", "answer-hold"]
    with registry.transaction() as session:
        actors = session.scalars(select(AuditEntry.actor).where(AuditEntry.action == "emergency-scene")).all()
    assert actors == ["coord-a"]  # recorded as the logged-in coordinator's


def test_hold_from_the_day_before_chuseok_runs_out_and_the_person_is_discharged(
    prefect_server: None, registry: Database, mail: MailCapture, clock: FixedClock
) -> None:
    # Admitted Wed 2026-09-23, day 1. 공휴일 after it: Thu 09-24, Fri 09-25 (추석), Sat 09-26 (추석 2nd
    # day: a Saturday, but a holiday, so out), Sun 09-27. Counted: Mon 09-28 (2), Tue 09-29 (3).
    at(clock, D(2026, 9, 23))
    scene = SceneEntry(
        requested_at="2026-09-23 08:40",
        doctor_consented_at="2026-09-23 09:00",
        police_agency_id="gaon-police-1",
        police_consented_at="2026-09-23 09:05",
        escort="fire-119",
        hospital_agency_id="gaon-hospital-1",
        admitted_at="2026-09-23 09:30",
    )
    people = launch(registry, emergency_admission, "C", "R-C-001", scene=scene)
    assert people.run(until=waiting_on("hold")) is not None
    with registry.transaction() as session:
        [record] = mental_health.scene_records(session, cases.find_case(session, people.case_ref))
    assert record["escort_agency"] == "gaon-119-1"  # the officer consented, the district's 119 escorted
    found = referrals(registry, people.case_ref)
    assert (found["guardian-notice"].due_date, found["hold"].due_date) == (D(2026, 9, 24), D(2026, 9, 29))

    # The hospital never reports. Legal ladder, on calendar days: Mon 09-28 reminder (hospital and
    # coordinator), Tue 09-29 the coordinator again, Wed 09-30 timed out: the flow hears "timed-out".
    seen: dict[tuple[str, str], dt.date] = {}
    taken = []
    for day in (D(2026, 9, 27), D(2026, 9, 28), D(2026, 9, 29), D(2026, 9, 30)):
        at(clock, day)
        taken.append(people.sweep())
        for message in read_captured(mail.mail_dir):
            for to in message.to:
                seen.setdefault((message.headers["X-Yeongye-Key"].split(":")[1], to), day)
    assert taken == [{}, {"reminder": 1}, {"coordinator": 1}, {"timed-out": 1}]
    assert {key: day for key, day in seen.items() if key[0].startswith("hold-")} == {
        ("hold-gaon-hospital-1-reminder", "hospital1@example.org"): D(2026, 9, 28),
        ("hold-gaon-hospital-1-reminder", "coord-c@example.org"): D(2026, 9, 28),
        ("hold-gaon-hospital-1-coordinator", "coord-c@example.org"): D(2026, 9, 29),
        ("hold-gaon-hospital-1-timed-out", "coord-c@example.org"): D(2026, 9, 30),
        ("hold-gaon-hospital-1-timed-out", "supervisor-2@example.org"): D(2026, 9, 30),  # complex C's centre
    }
    assert referrals(registry, people.case_ref)["hold"].status == "failed"
    # Discharged at the deadline: aftercare begins by asking for consent (tests below drive it).
    assert steering.current_wait(registry, people.case_ref).kind == "consent"
    assert stages(registry, people.case_ref)[-2:] == ["discharged-at-deadline", "consent"]


def test_an_officer_who_does_not_consent_ends_the_case_and_the_reason_stays_in_the_registry(
    prefect_server: None, registry: Database, mail: MailCapture, clock: FixedClock, results_dir: Path
) -> None:
    at(clock, D(2026, 9, 20), dt.time(15, 0))  # a Sunday
    refused = SceneEntry(
        requested_at="2026-09-20 14:10",
        doctor_consented_at="2026-09-20 14:20",
        police_agency_id="gaon-police-1",
    )
    reason = "경찰관: 자타해 위험이 급박하지 않다고 판단 (R-B-002 관련 메모 QZ-scene)"
    people = launch(registry, emergency_admission, "B", "R-B-002", scene=refused, scene_reason=reason)
    assert people.run() is None
    assert closed(registry, people.case_ref) == ("closed", "no-police-consent")
    assert referrals(registry, people.case_ref) == {}  # no agency was asked for anything
    with registry.transaction() as session:
        texts = session.scalars(select(Note.text)).all()
    assert reason in texts
    assert_not_in_prefect(["QZ-scene"], results_dir)


# --- a case begun before the on-scene record, resumed by the new code ------------------------------


@flow(name="emergency-admission", persist_result=True)
def emergency_step_by_step(case_ref: str) -> str:
    """The emergency flow as it was before the on-scene record, as far as the escort's report: what
    a case begun then has run and answered when it resumes in the new code."""
    check_case(case_ref, "emergency-admission")
    enter_stage(case_ref, "intake")
    record_legal_basis(
        case_ref, ["police", "fire-119", "psychiatric-hospital", "district-office"], "정신건강복지법 §50"
    )
    publish_timeline(case_ref, "intake")
    assert ask(case_ref, "doctor-consent", "emergency-doctor-consent", approver_role="coordinator")
    police_outcomes = ("consented-police-escort", "consented-119-escort", "refused")
    police = await_outcome(case_ref, "police-consent", Need("police", "emergency-consent"), outcomes=police_outcomes)
    assert police.outcome == "consented-police-escort"
    await_outcome(case_ref, "escort", Need("police", "escort", police.agency_id), outcomes=("admitted", "not-admitted"))
    raise AssertionError("the old code is replaced before the escort reports")


def test_a_case_waiting_in_the_step_by_step_code_replays_and_finishes_in_the_new(
    prefect_server: None, registry: Database, mail: MailCapture, clock: FixedClock
) -> None:
    at(clock, D(2026, 9, 22))  # Tuesday
    people = launch(
        registry,
        emergency_step_by_step,
        "D",
        "R-D-001",
        outcomes={"police-consent": "consented-police-escort", "escort": "admitted", "hold": "discharged"},
    )
    assert people.run(until=waiting_on("escort")) is not None
    sent_before = Counter(m.headers["X-Yeongye-Key"] for m in read_captured(mail.mail_dir))

    # The new code is deployed; the escort reports on Wed 09-23, the day before 추석.
    people.flow = emergency_admission
    at(clock, D(2026, 9, 23))
    assert people.run(until=waiting_on("hold")) is not None
    assert [k.rsplit("-", 1)[0] for k in people.waits] == [
        "decision-doctor-consent",
        "answer-police-consent",
        "answer-escort",
        "answer-guardian-notice",
    ]
    hold = referrals(registry, people.case_ref)["hold"]
    # Its clock is counted now, by the first-day reading: Wed 23 (1), Mon 28 (2), Tue 29 (3). The
    # hold's basis stays as such cases began: it is an input of a step they may already have run.
    assert (hold.due_date, hold.legal_basis) == (D(2026, 9, 29), "정신건강복지법 §50③")
    assert people.run() is None
    assert closed(registry, people.case_ref) == ("closed", "discharged")  # after its aftercare
    sent = Counter(m.headers["X-Yeongye-Key"] for m in read_captured(mail.mail_dir))
    assert max(sent.values()) == 1 and set(sent_before) < set(sent)  # nothing sent before went out again


# --- aftercare (§52), by itself ----------------------------------------------------------------


@flow(name="aftercare-only", persist_result=True)
def aftercare_only(case_ref: str) -> str:
    """Aftercare as both admission flows end, without the admission before it (keeps replays short)."""
    return aftercare(case_ref, "discharged")


def launch_aftercare(db: Database, complex_code: str, resident_ref: str, **answers: Any) -> People:
    """Open an emergency-admission case whose flow run is only its aftercare (as steering.launch does)."""
    deployment_id = aftercare_only.to_deployment(name="aftercare-only").apply()
    with db.transaction() as session:
        case_ref = cases.open_case(
            session,
            intervention="emergency-admission",
            complex_code=complex_code,
            resident_ref=resident_ref,
            opened_at=SystemClock().now(),
            by=coordinator_of(db, complex_code).staff_id,
        ).ref
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run_from_deployment(deployment_id, parameters={"case_ref": case_ref})
    with db.transaction() as session:
        cases.attach_flow_run(session, cases.find_case(session, case_ref), str(flow_run.id))
    return People(db, aftercare_only, case_ref, str(flow_run.id), **answers)


@every_backend
def test_aftercare_without_consent_tells_only_the_centre_on_the_52_2_exception(
    prefect_server: None, registry: Database, mail: MailCapture, clock: FixedClock, results_dir: Path
) -> None:
    at(clock, D(2026, 3, 16))
    people = launch_aftercare(
        registry,
        "A",
        "R-A-002",
        consent=False,  # the person refuses registration ...
        decisions={"aftercare-exception": True},  # ... and the supervisor confirms the §52② conditions
    )
    assert people.run(until=waiting_on("community-programs")) is not None
    assert [k.rsplit("-", 1)[0] for k in people.waits] == [
        "consent",
        "decision-aftercare-exception",
        "answer-mh-registration",
        "answer-support-plan",
    ]
    with registry.transaction() as session:
        resident = session.get(Resident, "R-A-002")
        assert resident is not None
        personal = [resident.name, resident.phone, resident.unit]
        case = cases.find_case(session, people.case_ref)
        consent = session.scalar(select(Consent).where(Consent.case_id == case.id))
        disclosures = session.scalars(
            select(AuditEntry.detail).where(AuditEntry.case_id == case.id, AuditEntry.action == "disclosure")
        ).all()
    assert consent is not None and consent.status == "refused"

    # The centre is covered by §52② and sees who and what; the audit names the basis.
    [registration] = emails(mail, "mh-registration", "mhwc1@example.org")
    assert all(p in registration.text for p in personal) and "정신건강복지센터 등록·사례관리" in registration.text
    assert "정신건강복지법 §52②에 따라 제공되는 정보" in registration.text
    assert [(d["agency"], d["basis"], "health" in d["fields"]) for d in disclosures] == [
        ("gaon-mhwc-1", "정신건강복지법 §52②", True),
        ("gaon-mhwc-1", "정신건강복지법 §52②", True),  # the support plan
    ]
    # The 사회복지관 has neither consent nor a basis: no person and nothing about health.
    [programs] = emails(mail, "community-programs", "wc1@example.org")
    for needle in [*personal, *(SERVICES[s][0] for s in HEALTH_SERVICES), "입원", "정신건강"]:
        assert needle not in programs.text and needle not in programs.html and needle not in programs.subject
    assert "동의 범위 밖" in programs.text

    assert_not_in_prefect(personal, results_dir)


def test_aftercare_with_neither_consent_nor_exception_is_the_complex_follow_up_only(
    prefect_server: None, registry: Database, mail: MailCapture, clock: FixedClock
) -> None:
    at(clock, D(2026, 3, 16))
    people = launch_aftercare(registry, "D", "R-D-002", consent=False, decisions={"aftercare-exception": False})
    assert people.run() is None
    assert closed(registry, people.case_ref) == ("closed", "discharged")
    assert [k.rsplit("-", 1)[0] for k in people.waits] == [
        "consent",
        "decision-aftercare-exception",
        "answer-community-programs",
        "answer-follow-up-1m",
        "answer-follow-up-3m",
        "answer-follow-up-6m",
    ]
    # The centre is never contacted; the visits are due 1, 3 and 6 months on (Mon 03-16: 04-16, ...).
    assert not [m for m in read_captured(mail.mail_dir) if "mhwc" in m.to[0]]
    assert referrals(registry, people.case_ref)["follow-up-1m"].due_date == D(2026, 4, 16)


# --- 행정입원 (§44) --------------------------------------------------------------------------


def test_administrative_admission_for_treatment_then_extension_then_release_at_the_deadline(
    prefect_server: None, registry: Database, mail: MailCapture, clock: FixedClock
) -> None:
    at(clock, D(2026, 1, 5))  # Monday: applied, referred and admitted the same day
    people = launch(
        registry,
        administrative_admission,
        "B",
        "R-B-001",
        outcomes={
            "application": "applied",
            "diagnosis-referral": "admission-ordered",
            "diagnostic-admission": "admitted",
            "findings": "unanimous",
            "appropriateness-review": "appropriate",
            "release-review-1": "extended",
        },
    )
    assert people.run(until=waiting_on("findings")) is not None
    at(clock, D(2026, 1, 12))  # the two psychiatrists agree on Monday 01-12
    assert people.run(until=waiting_on("appropriateness-review")) is not None
    at(clock, D(2026, 1, 29))
    assert people.run(until=waiting_on("release-review-1")) is not None
    at(clock, D(2026, 3, 30))  # the review board extends the admission
    assert people.run(until=waiting_on("release-review-2")) is not None

    due = {step: (r.agency_id, r.due_date) for step, r in referrals(registry, people.case_ref).items()}
    assert due == {
        "application": ("gaon-mhwc-1", D(2026, 1, 8)),  # the centre's usual 3 business days, no legal clock
        "diagnosis-referral": ("gaon-district-1", D(2026, 1, 6)),  # "즉시": next business day
        "diagnostic-admission": ("gaon-designated-1", D(2026, 1, 6)),
        "guardian-notice": ("gaon-district-1", D(2026, 1, 6)),  # §44⑤ without delay
        "appropriateness-report": ("gaon-designated-1", D(2026, 1, 8)),  # §45: Tue 6, Wed 7, Thu 8
        "findings": ("gaon-designated-1", D(2026, 1, 18)),  # §44④: 14 days counting 01-05
        "admission-notice": ("gaon-district-1", D(2026, 1, 13)),  # §44⑧, the business day after 01-12
        "appropriateness-review": ("gaon-review-committee-1", D(2026, 2, 4)),  # §47③: 1 month
        "release-review-1": ("gaon-review-board-1", D(2026, 4, 4)),  # §62①: 3 months, ends Saturday
        "extension-notice-1": ("gaon-district-1", D(2026, 3, 31)),  # §62③
        "release-review-2": ("gaon-review-board-1", D(2026, 7, 4)),  # §62②: from 04-05, 3 months
    }

    [guardian] = emails(mail, "guardian-notice", "district1@example.org")
    assert "2026-01-05 (월) ~ 2026-01-18 (일)" in notice_text(guardian)
    assert "가온시립정신병원(지정정신의료기관)" in notice_text(guardian)
    [admission] = emails(mail, "admission-notice", "district1@example.org")
    assert "계속 입원 통지서 (정신건강복지법 §44⑧)" in notice_text(admission)
    assert "2026-01-05 (월) ~ 2026-04-04 (토)" in notice_text(admission) and "제55조" in notice_text(admission)
    [extension] = emails(mail, "extension-notice-1", "district1@example.org")
    assert "2026-04-05 (일) ~ 2026-07-04 (토)" in notice_text(extension)

    # No second review by Sat 07-04: the board and coordinator are reminded on Fri 07-03, and on
    # Sun 07-05 the period has ended: released at the deadline, then aftercare.
    at(clock, D(2026, 7, 3))
    assert people.sweep() == {"reminder": 1}
    at(clock, D(2026, 7, 5))
    assert people.sweep() == {"timed-out": 1}
    assert referrals(registry, people.case_ref)["release-review-2"].status == "failed"
    assert steering.current_wait(registry, people.case_ref).kind == "consent"  # released: aftercare begins
    assert stages(registry, people.case_ref)[-2:] == ["released-at-deadline", "consent"]


def test_administrative_admission_split_findings_discharge_without_registration(
    prefect_server: None, registry: Database, mail: MailCapture, clock: FixedClock
) -> None:
    at(clock, D(2026, 2, 12))  # Thursday before 설 (Mon 02-16 .. Wed 02-18)
    people = launch(
        registry,
        administrative_admission,
        "E",
        "R-E-001",
        outcomes={
            "application": "applied",
            "diagnosis-referral": "admission-ordered",
            "diagnostic-admission": "admitted",
            "findings": "split",
        },
    )
    assert people.run(until=lambda wait: wait.kind == "consent") is not None
    assert stages(registry, people.case_ref)[-2:] == ["discharged-split-findings", "consent"]
    found = referrals(registry, people.case_ref)
    assert found["appropriateness-report"].due_date == D(2026, 2, 20)  # Fri 13 (1), Thu 19 (2), Fri 20 (3)
    assert found["findings"].due_date == D(2026, 2, 25)  # 14 days counting 02-12
    # Split findings end the admission: no notice of continued admission, no committee, no release review.
    assert set(found) == {
        "application",
        "diagnosis-referral",
        "diagnostic-admission",
        "guardian-notice",
        "appropriateness-report",
        "findings",
    }
