"""Job placement (일자리 연계): the eligibility rules, the recruitment window, and every branch of the flow.

Each case runs in this process against the real Prefect server, SMTP server and registry, and is
answered the way people would answer it (``yeongye respond --outcome`` / ``approve`` / ``jobs facts``).
The sample district's residents carry the facts (registry/sample/gaon-gu.json): R-C-001 65+ with the
기초연금, R-C-002 71 without it, R-B-002 57 on 생계급여, R-D-002 85 on 생계급여 (D단지: mostly 수급자,
mostly seniors), R-E-002 64 with employee health insurance, R-E-003 57, R-A-002 with a 장기요양 grade,
R-F-002 not yet verified.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
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


# --- the rules (korea_domain.md §3; each test names the section its rule comes from) ---------------


def _facts(
    age: int,
    *,
    pension: bool = False,
    livelihood: bool = False,
    insured: bool = False,
    ltc: bool = False,
    programme: bool = False,
) -> JobFacts:
    return JobFacts(age, pension, livelihood, insured, ltc, programme)


@pytest.mark.parametrize(
    ("facts", "track"),
    [
        (_facts(65, pension=True), Track("senior-public-interest", ("age-65-plus", "basic-pension"))),
        (_facts(90, pension=True), Track("senior-public-interest", ("age-65-plus", "basic-pension"))),
        (_facts(64, pension=True), Track("senior-capability", ("age-60-plus",))),  # 기초연금 alone is not enough
        (_facts(65), Track("senior-capability", ("age-60-plus",))),  # nor 65 alone
    ],
)
def test_public_interest_activity_takes_65_plus_with_the_basic_pension(facts: JobFacts, track: Track) -> None:
    """§3.1 노인공익활동사업: age 65+ AND 기초연금 수급자."""
    assert jobs.job_track(facts) == track


@pytest.mark.parametrize(
    ("facts", "track"),
    [
        (_facts(60), Track("senior-capability", ("age-60-plus",))),
        (_facts(78), Track("senior-capability", ("age-60-plus",))),
        (_facts(59), Track("employment-support", ("working-age",))),
    ],
)
def test_capability_jobs_take_60_plus(facts: JobFacts, track: Track) -> None:
    """§3.1 노인역량활용사업: age 60+ ("some types 65+": the club checks the type's age)."""
    assert jobs.job_track(facts) == track


@pytest.mark.parametrize(
    ("facts", "track"),
    [
        # 생계급여: excluded, and routed to 자활 instead (the section's design note; §3.3).
        (_facts(70, pension=True, livelihood=True), Track("self-sufficiency", ("livelihood-benefit",))),
        (_facts(70, insured=True), Track("no-track-employed", ("employed",))),
        (
            _facts(78, pension=True, ltc=True),
            Track("no-track-senior-excluded", ("excluded-ltc-grade",)),
        ),
        (
            _facts(70, pension=True, programme=True),
            Track("no-track-in-job-programme", ("excluded-other-job-programme",)),
        ),
        # Every exclusion that applies is kept; a 장기요양 grade decides the code (it does not end).
        (
            _facts(70, ltc=True, programme=True),
            Track("no-track-senior-excluded", ("excluded-ltc-grade", "excluded-other-job-programme")),
        ),
        # Between 60 and 64 the 고용센터 remains, and the audit trail says why no senior job.
        (_facts(62, ltc=True), Track("employment-support", ("working-age", "excluded-ltc-grade"))),
    ],
)
def test_senior_jobs_exclude_livelihood_employees_care_grades_and_other_programmes(
    facts: JobFacts, track: Track
) -> None:
    """§3.1 Exclusions (2024 guidelines): 생계급여 수급자, 건강보험 직장가입자, 장기요양 1–5등급/인지지원등급,
    people in another government job programme."""
    assert jobs.job_track(facts) == track


@pytest.mark.parametrize("age", [15, 59, 62, 64, 65, 67, 85])
def test_livelihood_benefit_recipients_go_to_self_sufficiency_at_any_age(age: int) -> None:
    """§3.1 excludes 생계급여 recipients from senior jobs and routes them to 자활 (design note); §3.3: 자활
    takes 수급자, seniors included (a 67-year-old of D단지 gets 자활근로, not a closure)."""
    facts = _facts(age, pension=age >= 65, livelihood=True)
    assert jobs.job_track(facts) == Track("self-sufficiency", ("livelihood-benefit",))


@pytest.mark.parametrize(
    "facts",
    [
        _facts(67, livelihood=True, ltc=True),
        _facts(67, livelihood=True, programme=True),
        _facts(62, livelihood=True, insured=True),
    ],
)
def test_self_sufficiency_names_no_other_exclusion(facts: JobFacts) -> None:
    """§3.3 names no exclusion besides not being a 수급자 or 차상위자 (UNCERTAIN for a 장기요양 grade or
    another programme): the 지역자활센터 decides, and answers not-eligible."""
    assert jobs.job_track(facts).code == "self-sufficiency"


@pytest.mark.parametrize(
    ("facts", "track"),
    [
        (_facts(15), Track("employment-support", ("working-age",))),
        # At 60–64 senior jobs come first: an exclusion shows the upper bound.
        (_facts(64, ltc=True), Track("employment-support", ("working-age", "excluded-ltc-grade"))),
        (_facts(65, ltc=True), Track("no-track-senior-excluded", ("excluded-ltc-grade",))),
        (_facts(14), Track("no-track-under-15", ("under-15",))),
        (_facts(14, livelihood=True), Track("no-track-under-15", ("under-15",))),
        (_facts(40, insured=True), Track("no-track-employed", ("employed",))),
        (_facts(62, insured=True), Track("no-track-employed", ("employed",))),
        # In a 재정지원 일자리 the 구직촉진수당 (Type I) may be refused (§7③), the service is not.
        (
            _facts(40, programme=True),
            Track("employment-support", ("working-age", "allowance-excluded-job-programme")),
        ),
        (
            _facts(62, programme=True),
            Track(
                "employment-support",
                ("working-age", "excluded-other-job-programme", "allowance-excluded-job-programme"),
            ),
        ),
    ],
)
def test_employment_support_takes_the_unemployed_of_15_to_64(facts: JobFacts, track: Track) -> None:
    """§3.2 국민취업지원제도 (구직자취업촉진법 §6): unemployed, 15–64 as the statute reads (15–69 in
    practice: UNCERTAIN, §7 item 5); §7③ bars participants of certain 재정지원 일자리 from Type I."""
    assert jobs.job_track(facts) == track


def test_everyone_gets_a_track_or_a_reason_the_coordinator_can_act_on() -> None:
    """Issue 12: never a bare no-track. Every combination of the facts of §3 gets a track or a no-track
    code with a Korean label, and the code never names a health fact (PIPA §23, korea_domain.md §5)."""
    tracks = {jobs.SENIOR_PUBLIC_INTEREST, jobs.SENIOR_CAPABILITY, jobs.SELF_SUFFICIENCY, jobs.EMPLOYMENT_SUPPORT}
    seen = set()
    for age in (14, 15, 40, 59, 60, 64, 65, 67, 90):
        for flags in itertools.product((False, True), repeat=5):
            track = jobs.job_track(JobFacts(age, *flags))
            assert track.code in tracks | jobs.NO_TRACKS, track
            assert jobs.label(track.code).startswith(jobs.LABELS[track.code][0])
            seen.add(track.code)
    assert seen == tracks | jobs.NO_TRACKS
    assert not any(health in code for code in jobs.NO_TRACKS for health in ("ltc", "care", "grade"))


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
        pytest.param(
            "R-D-002",
            {"self-sufficiency": "participating"},
            set(),
            "self-sufficiency-participating",
            {
                "self-sufficiency": ("gaon-selfsuff-1", "completed", "participating"),
                "job-check-1m": ("gaon-selfsuff-1", "completed", None),
            },
            id="senior-on-livelihood-benefit-self-sufficiency",
        ),
        pytest.param("R-E-002", {}, set(), "no-track-employed", {}, id="employed-no-track"),
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


def test_no_track_closes_with_its_reason_and_the_audit_trail_says_what_to_do(
    prefect_server: None, registry: Database, results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R-A-002 (78, 장기요양 grade): excluded from senior jobs (§3.1) and past the 고용센터's ages (§3.2).
    The case closes with a code saying so; the coordinator reads the label in the audit trail. The
    code does not name the grade: Prefect never learns the resident's health."""
    _answers, case_ref = _run(registry, "R-A-002")

    case = read_case(registry, case_ref)
    assert case.outcome == "no-track-senior-excluded"
    assert referral_steps(registry, case) == {}
    with registry.transaction() as session:
        detail = session.scalar(
            select(AuditEntry.detail).where(AuditEntry.case_id == case.id, AuditEntry.action == "job-track")
        )
    assert detail == {
        "track": "no-track-senior-excluded",
        "reasons": ["excluded-ltc-grade"],
        "reason": jobs.label("no-track-senior-excluded"),
    }
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-a"))
    shown = runner.invoke(app, ["audit", "--resident", "R-A-002", "--json"])
    assert shown.exit_code == 0, shown.output
    row = next(r for r in json.loads(shown.output) if r["action"] == "job-track")
    assert row["basis"].startswith("사유 (reason): 연계할 일자리 없음: 장기요양 등급이 있어 노인일자리 제외")
    assert_not_in_prefect(["excluded-ltc-grade", "ltc-grade"], results_dir)


def test_a_case_assessed_before_no_track_said_why_still_replays_to_its_closure(
    prefect_server: None, registry: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A case the earlier rules gave a bare ``no-track`` (R-D-002, then excluded for 생계급여) waits for
    its closure while the new rules are deployed. Resumed, it replays its cached assessment
    (task cache keys: tasks/retry.py) and closes as it would have, not re-routed to 자활 halfway."""
    earlier_rules = {"deployed": True}
    assess, label = jobs.assess, jobs.label

    def assessed_before(resident: Resident, today: dt.date) -> Track:
        return (
            Track("no-track", ("excluded-livelihood-benefit",))
            if earlier_rules["deployed"]
            else assess(resident, today)
        )

    monkeypatch.setattr(jobs, "assess", assessed_before)
    monkeypatch.setattr(jobs, "label", lambda code: "" if earlier_rules["deployed"] else label(code))

    def redeploy(wait: steering.Wait) -> tuple[bool, str]:
        if wait.key.startswith("decision-closure"):
            earlier_rules["deployed"] = False
        return True, ""

    _answers, case_ref = _run(registry, "R-D-002", on_decision=redeploy)

    case = read_case(registry, case_ref)
    assert case.outcome == "no-job-track"
    assert referral_steps(registry, case) == {}
    with registry.transaction() as session:
        assessed = session.scalars(
            select(AuditEntry.detail).where(AuditEntry.case_id == case.id, AuditEntry.action == "job-track")
        ).all()
    assert [entry["track"] for entry in assessed] == ["no-track"]  # once, before: replayed since


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
            rest = ["--no-livelihood", "--no-employee-insured", "--no-ltc-grade", "--no-other-job-programme"]
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
        assert resident.other_job_programme is False
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
