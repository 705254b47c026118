"""Job placement (일자리 연계): the eligibility rules, the recruitment window, and every branch of the flow.

Each case runs in this process against the real Prefect server, SMTP server and registry, and is
answered the way people would answer it (``yeongye respond --outcome`` / ``approve`` / ``jobs facts``).
The sample district's residents carry the facts (registry/sample/gaon-gu.json): R-C-001 65+ with the
기초연금, R-C-002 71 without it, R-B-002 57 on 생계급여, R-E-003 57, R-A-002 with a 장기요양 grade,
R-F-002 not yet verified.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from flows.jobs import flow as jobs_flow
from flows.jobs.flow import job_placement
from flows.outreach.flow import outreach
from registry import calendar, jobs
from registry.calendar import BusinessCalendar
from registry.db import Database
from registry.jobs import JobFacts, Track
from registry.models import Approval, AuditEntry, Case, Referral, Resident
from tasks.runtime import business_calendar
from tests.driving import Answers, assert_not_in_prefect, coordinator_of, drive, read_case, referral_steps, token_of
from yeongye import steering
from yeongye.cli import app
from yeongye.mailcapture import MailCapture, read_captured

runner = CliRunner()


# --- the rules -----------------------------------------------------------------------------------


def _facts(age: int, *, pension: bool = False, livelihood: bool = False, insured: bool = False, ltc: bool = False):
    return JobFacts(age, pension, livelihood, insured, ltc)


@pytest.mark.parametrize(
    ("facts", "track"),
    [
        (_facts(65, pension=True), Track("senior-public-interest", ("age-65-plus", "basic-pension"))),
        (_facts(64, pension=True), Track("senior-capability", ("age-60-plus",))),  # 기초연금 alone is not enough
        (_facts(78), Track("senior-capability", ("age-60-plus",))),
        (_facts(60), Track("senior-capability", ("age-60-plus",))),
        (_facts(78, pension=True, ltc=True), Track("no-track", ("excluded-ltc-grade",))),
        (_facts(70, pension=True, livelihood=True), Track("no-track", ("excluded-livelihood-benefit",))),
        (_facts(62, insured=True), Track("no-track", ("employed",))),
        (_facts(62, livelihood=True), Track("self-sufficiency", ("livelihood-benefit",))),
        (_facts(62, ltc=True), Track("employment-support", ("working-age", "excluded-ltc-grade"))),
        (_facts(59, livelihood=True), Track("self-sufficiency", ("livelihood-benefit",))),
        (_facts(59), Track("employment-support", ("working-age",))),
        (_facts(15), Track("employment-support", ("working-age",))),
        (_facts(14), Track("no-track", ("age",))),
    ],
)
def test_job_track_follows_the_eligibility_rules(facts: JobFacts, track: Track) -> None:
    assert jobs.job_track(facts) == track


def test_recruitment_window_is_the_open_one_else_the_next() -> None:
    days = BusinessCalendar()
    window = "11-28/12-26"
    open_now = jobs.recruitment_window(dt.date(2026, 11, 30), window, days)
    assert (open_now.opens, open_now.closes) == (dt.date(2026, 11, 28), dt.date(2026, 12, 26))
    assert open_now.is_open(dt.date(2026, 11, 30))
    # Announced 5 business days after Sat 12-26: 12-28, 12-29, 12-30, 12-31, (01-01 New Year's Day) 01-04.
    assert open_now.announced == dt.date(2027, 1, 4)
    after = jobs.recruitment_window(dt.date(2026, 12, 27), window, days)
    assert (after.opens, after.is_open(dt.date(2026, 12, 27))) == (dt.date(2027, 11, 28), False)
    before = jobs.recruitment_window(dt.date(2026, 3, 2), window, days)
    assert (before.opens, before.closes) == (dt.date(2026, 11, 28), dt.date(2026, 12, 26))
    # A window over New Year, seen in January: the one that opened last December.
    over = jobs.recruitment_window(dt.date(2027, 1, 10), "12-01/01-15", days)
    assert (over.opens, over.closes) == (dt.date(2026, 12, 1), dt.date(2027, 1, 15))


@pytest.mark.parametrize("bad", ["11-28", "13-01/12-26", "11-31/12-26", "a-b/c-d", ""])
def test_a_bad_recruitment_window_setting_names_the_setting(bad: str) -> None:
    with pytest.raises(ValueError, match="YEONGYE_SENIOR_JOBS_RECRUITMENT"):
        jobs.parse_window(bad)


# --- the flow ------------------------------------------------------------------------------------


def _window(monkeypatch: pytest.MonkeyPatch, db: Database, *, open_today: bool) -> jobs.RecruitmentWindow:
    """Set the club's window around today (or from next week on), whatever today is; returns it."""
    today = calendar.today(calendar.SystemClock())
    opens = today - dt.timedelta(days=1) if open_today else today + dt.timedelta(days=7)
    setting = f"{opens:%m-%d}/{opens + dt.timedelta(days=20):%m-%d}"
    monkeypatch.setenv("YEONGYE_SENIOR_JOBS_RECRUITMENT", setting)
    with db.transaction() as session:
        return jobs.recruitment_window(today, setting, business_calendar(session))


def _run(db: Database, resident: str, **script: object) -> tuple[Answers, str]:
    job_placement.to_deployment(name=job_placement.name).apply()
    launched = steering.launch(
        db,
        intervention="job-placement",
        complex_code=resident[2],
        resident_ref=resident,
        by=coordinator_of(db, resident[2]),
    )
    answers = Answers(db, launched.case_ref, **script)  # type: ignore[arg-type]
    final = drive(answers, launched.flow_run_id, flow=job_placement, max_waits=30)
    assert final.state is not None and final.state.is_completed(), final.state
    return answers, launched.case_ref


def _case_of(db: Database, resident: str) -> str:
    """The resident's open job-placement case (a script answering a wait knows the resident, not the case)."""
    with db.transaction() as session:
        ref = session.scalar(
            select(Case.ref).where(
                Case.resident_ref == resident, Case.intervention == "job-placement", Case.status == "open"
            )
        )
    assert ref is not None
    return ref


def _due(db: Database, case_ref: str) -> dict[str, dt.date]:
    case = read_case(db, case_ref)
    with db.transaction() as session:
        return {r.step: r.due_date for r in session.scalars(select(Referral).where(Referral.case_id == case.id))}


def test_public_interest_job_placed_at_the_complex_with_monthly_checks(
    prefect_server: None,
    registry: Database,
    mail: MailCapture,
    results_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """R-C-001 (65+, 기초연금) applies in the window; the club places them at their own complex, as
    C단지 does: the 관리사무소 takes the worker on and checks the job each month for three months."""
    window = _window(monkeypatch, registry, open_today=True)
    answers, case_ref = _run(registry, "R-C-001", outcomes={"job-application": jobs_flow.PLACED_AT_COMPLEX})

    case = read_case(registry, case_ref)
    assert (case.status, case.outcome) == ("closed", "placed-at-complex")
    assert referral_steps(registry, case) == {
        "job-application": ("gaon-seniorclub-1", "completed", "placed-at-complex"),
        "job-site": ("gaon-mgmt-1", "completed", None),
        "job-check-1m": ("gaon-mgmt-1", "completed", None),
        "job-check-2m": ("gaon-mgmt-1", "completed", None),
        "job-check-3m": ("gaon-mgmt-1", "completed", None),
    }
    assert [k for k in answers.waits if not k.startswith("answer")] == ["consent-1", "decision-closure-1-1"]
    with registry.transaction() as session:
        resident = session.get(Resident, "R-C-001")
        assert resident is not None
        personal = [resident.name, resident.phone]
    # The club has until the announcement to report the result.
    assert _due(registry, case_ref)["job-application"] == window.announced

    emails = {m.headers["X-Yeongye-Key"]: m for m in read_captured(mail.mail_dir)}
    application = emails[f"{case_ref}:job-application:gaon-seniorclub-1"]
    assert "노인공익활동사업" in application.subject + application.text
    assert resident.name in application.text  # the consent names the senior club
    assert_not_in_prefect(personal, results_dir)


@pytest.fixture
def one_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """One monthly check instead of three: the three are covered above, the branches are what matter here."""
    monkeypatch.setattr(jobs_flow, "CHECK_MONTHS", 1)


def test_capability_job_from_the_waiting_list_is_checked_by_the_club(
    prefect_server: None, registry: Database, monkeypatch: pytest.MonkeyPatch, one_check: None
) -> None:
    """R-C-002 (71, no 기초연금): 노인역량활용사업; on the waiting list, then placed in a vacancy."""
    _window(monkeypatch, registry, open_today=True)
    _answers, case_ref = _run(
        registry,
        "R-C-002",
        outcomes={"job-application": jobs_flow.WAITING_LIST, "vacancy": jobs_flow.PLACED},
    )

    case = read_case(registry, case_ref)
    assert case.outcome == "placed"
    assert referral_steps(registry, case) == {
        "job-application": ("gaon-seniorclub-1", "completed", "waiting-list"),
        "vacancy": ("gaon-seniorclub-1", "completed", "placed"),
        "job-check-1m": ("gaon-seniorclub-1", "completed", None),
    }
    with registry.transaction() as session:
        services = {r.step: r.service for r in session.scalars(select(Referral).where(Referral.case_id == case.id))}
        vacancy_due = business_calendar(session).add_months(calendar.today(calendar.SystemClock()), 3)
    assert services["job-application"] == "senior-capability"
    assert _due(registry, case_ref)["vacancy"] == vacancy_due


@pytest.mark.parametrize(
    ("outcomes", "rejections", "expected"),
    [
        pytest.param({"job-application": "not-selected"}, set(), "not-selected", id="not-selected"),
        pytest.param(
            {"job-application": "waiting-list", "vacancy": "still-waiting"},
            set(),
            "on-waiting-list",
            id="still-waiting",
        ),
        pytest.param({}, {"job-application"}, "application-not-linked", id="club-declines"),
    ],
)
def test_senior_job_without_a_placement_closes_with_what_happened(
    prefect_server: None,
    registry: Database,
    monkeypatch: pytest.MonkeyPatch,
    outcomes: dict[str, str],
    rejections: set[str],
    expected: str,
) -> None:
    _window(monkeypatch, registry, open_today=True)
    _answers, case_ref = _run(registry, "R-D-003", outcomes=outcomes, rejections=rejections)

    case = read_case(registry, case_ref)
    assert case.outcome == expected
    assert not any(step.startswith("job-check") for step in referral_steps(registry, case))


def test_outside_the_window_the_coordinator_confirms_when_it_opens(
    prefect_server: None, registry: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The club recruits from next week: nothing is sent to it until the coordinator confirms, and its
    answer is due by the announcement after that window."""
    window = _window(monkeypatch, registry, open_today=False)
    sent_before_confirming: list[str] = []

    def confirm(wait: steering.Wait) -> tuple[bool, str]:
        if wait.key.startswith("decision-recruitment-window"):
            sent_before_confirming.extend(referral_steps(registry, read_case(registry, _case_of(registry, "R-D-003"))))
        return True, ""

    _answers, case_ref = _run(
        registry, "R-D-003", on_decision=confirm, outcomes={"job-application": jobs_flow.NOT_SELECTED}
    )

    assert sent_before_confirming == []
    assert read_case(registry, case_ref).outcome == "not-selected"
    assert _due(registry, case_ref)["job-application"] == window.announced
    with registry.transaction() as session:
        days = business_calendar(session)
        approval = session.scalar(select(Approval).where(Approval.key == "decision-recruitment-window"))
        assert approval is not None and approval.due_date > window.opens
        assert approval.due_date == days.add_business_days(window.opens, 3)


def test_outside_the_window_a_withdrawn_application_closes(
    prefect_server: None, registry: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _window(monkeypatch, registry, open_today=False)

    def withdraw(wait: steering.Wait) -> tuple[bool, str]:
        if wait.key.startswith("decision-recruitment-window"):
            return False, "본인이 신청 철회 (withdrawn)"
        return True, ""

    _answers, case_ref = _run(registry, "R-D-003", on_decision=withdraw)

    case = read_case(registry, case_ref)
    assert case.outcome == "application-withdrawn"
    assert referral_steps(registry, case) == {}


@pytest.mark.parametrize(
    ("resident", "outcomes", "rejections", "expected", "steps"),
    [
        pytest.param(
            "R-B-002",
            {"self-sufficiency": "participating"},
            set(),
            "self-sufficiency-participating",
            {
                "self-sufficiency": ("gaon-selfsuff-1", "completed", "participating"),
                "job-check-1m": ("gaon-selfsuff-1", "completed", None),
            },
            id="livelihood-benefit-self-sufficiency",
        ),
        pytest.param(
            "R-E-003",
            {"employment": "not-eligible"},
            set(),
            "employment-not-eligible",
            {"employment": ("gaon-jobs-1", "completed", "not-eligible")},
            id="working-age-employment-not-eligible",
        ),
        pytest.param(
            "R-E-003",
            {},
            {"employment"},
            "employment-not-linked",
            {"employment": ("gaon-jobs-1", "rejected", None)},
            id="employment-centre-declines",
        ),
        pytest.param("R-A-002", {}, set(), "no-job-track", {}, id="long-term-care-grade-no-track"),
    ],
)
def test_working_age_and_excluded_residents(
    prefect_server: None,
    registry: Database,
    one_check: None,
    resident: str,
    outcomes: dict[str, str],
    rejections: set[str],
    expected: str,
    steps: dict[str, tuple[str, str, str | None]],
) -> None:
    _answers, case_ref = _run(registry, resident, outcomes=outcomes, rejections=rejections)

    case = read_case(registry, case_ref)
    assert case.outcome == expected
    assert referral_steps(registry, case) == steps
    if "employment" in steps:  # 구직자취업촉진법 §10: the centre decides within a month
        with registry.transaction() as session:
            month = business_calendar(session).add_months(calendar.today(calendar.SystemClock()), 1)
        assert _due(registry, case_ref)["employment"] == month


def test_unknown_facts_are_recorded_with_the_cli_then_the_track_follows(
    prefect_server: None, registry: Database, monkeypatch: pytest.MonkeyPatch, results_dir: Path
) -> None:
    """R-F-002's facts were never verified: the coordinator records them (registry only) and confirms."""
    _window(monkeypatch, registry, open_today=True)
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-f"))  # complex F's coordinator, logged in

    def record_facts(wait: steering.Wait) -> tuple[bool, str]:
        if wait.key.startswith("decision-job-facts"):
            case_ref = _case_of(registry, "R-F-002")
            partial = runner.invoke(app, ["jobs", "facts", case_ref, "--basic-pension"])
            assert partial.exit_code == 0, partial.output
            assert "생계급여" in partial.output  # still unknown, and said so
            rest = ["--no-livelihood", "--no-employee-insured", "--no-ltc-grade"]
            done = runner.invoke(app, ["jobs", "facts", case_ref, *rest])
            assert done.exit_code == 0 and f"yeongye approve {case_ref}" in done.output, done.output
        return True, ""

    answers, case_ref = _run(
        registry, "R-F-002", on_decision=record_facts, outcomes={"job-application": jobs_flow.NOT_SELECTED}
    )

    case = read_case(registry, case_ref)
    assert case.outcome == "not-selected"
    with registry.transaction() as session:
        resident = session.get(Resident, "R-F-002")
        assert resident is not None
        assert (resident.basic_pension, resident.livelihood_benefit, resident.ltc_grade) == (True, False, False)
        service = session.scalar(select(Referral.service).where(Referral.case_id == case.id))
    assert service == "senior-public-interest"
    assert "decision-job-facts-1-1" in answers.waits
    # Prefect saw the track, never who the resident is or why the track fits (the audit trail keeps that).
    assert_not_in_prefect([resident.name, resident.phone, "basic-pension", "age-65-plus"], results_dir)
    with registry.transaction() as session:
        audited = session.scalars(
            select(AuditEntry.detail).where(AuditEntry.case_id == case.id, AuditEntry.action == "job-track")
        ).all()
    assert [entry["track"] for entry in audited] == ["unknown", "senior-public-interest"]
    assert audited[1]["reasons"] == ["age-65-plus", "basic-pension"]


def test_facts_not_verified_and_consent_refused_close_without_a_referral(
    prefect_server: None, registry: Database
) -> None:
    def give_up(wait: steering.Wait) -> tuple[bool, str]:
        if wait.key.startswith("decision-job-facts"):
            return False, "본인이 확인을 원하지 않음 (would not say)"
        return True, ""

    _answers, unverified = _run(registry, "R-F-002", on_decision=give_up)
    assert read_case(registry, unverified).outcome == "eligibility-not-verified"

    answers, refused = _run(registry, "R-C-001", on_consent=lambda wait: (False, "resident"))
    case = read_case(registry, refused)
    assert case.outcome == "consent-refused-monitoring"
    assert referral_steps(registry, case) == {"re-approach-1": ("gaon-mgmt-1", "completed", None)}
    assert [k for k in answers.waits if k.startswith("consent")] == ["consent-1", "consent-2"]


def test_job_facts_refuses_bad_input_and_writes_nothing(
    prefect_server: None, registry: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    for flow in (job_placement, outreach):
        flow.to_deployment(name=flow.name).apply()
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-f"))  # complex F's coordinator, logged in
    coordinator = coordinator_of(registry, "F")
    other = steering.launch(registry, intervention="outreach", complex_code="F", resident_ref="R-F-002", by=coordinator)
    no_case = runner.invoke(app, ["jobs", "facts", "C-2026-9999", "--basic-pension"])
    wrong = runner.invoke(app, ["jobs", "facts", other.case_ref, "--basic-pension"])
    job = steering.launch(
        registry, intervention="job-placement", complex_code="F", resident_ref="R-F-002", by=coordinator
    )
    nothing = runner.invoke(app, ["jobs", "facts", job.case_ref])

    assert (no_case.exit_code, wrong.exit_code, nothing.exit_code) == (2, 2, 2)
    said = [" ".join(result.output.split()) for result in (no_case, wrong, nothing)]  # rich wraps lines
    assert "case: 사례 'C-2026-9999'" in said[0] and "not a job-placement case" in said[1]
    assert "facts:" in said[2] and "nothing to record" in said[2]
    with registry.transaction() as session:
        resident = session.get(Resident, "R-F-002")
        assert resident is not None and resident.basic_pension is None
