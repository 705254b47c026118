"""Outreach / safety check (안부확인): every branch, driven end to end.

Each case runs in this process against the real Prefect server, SMTP server and registry, and is
answered the way people would answer it (``yeongye respond --outcome`` / ``approve``).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from flows.hoarding.flow import hoarding
from flows.jobs.flow import job_placement
from flows.mental_health.counselling import mh_counselling
from flows.outreach import flow as outreach_flow
from flows.outreach.flow import outreach
from registry import calendar
from registry.db import Database
from registry.models import AuditEntry, Case, Referral, Resident
from tasks.runtime import business_calendar
from tests.conftest import every_backend
from tests.driving import Answers, assert_not_in_prefect, coordinator_of, drive, read_case, referral_steps, token_of
from yeongye import steering
from yeongye.cli import app
from yeongye.mailcapture import MailCapture, read_captured


def _deploy() -> None:
    for flow in (outreach, hoarding, mh_counselling, job_placement):
        flow.to_deployment(name=flow.name).apply()


def _drive(db: Database, case_ref: str, flow_run_id: str, **script: object) -> tuple[Answers, Case]:
    answers = Answers(db, case_ref, **script)  # type: ignore[arg-type]
    final = drive(answers, flow_run_id, flow=outreach, max_waits=30)
    assert final.state is not None and final.state.is_completed(), final.state
    return answers, read_case(db, case_ref)


def _run(db: Database, resident: str, **script: object) -> tuple[Answers, Case]:
    _deploy()
    launched = steering.launch(
        db, intervention="outreach", complex_code=resident[2], resident_ref=resident, by=coordinator_of(db, resident[2])
    )
    return _drive(db, launched.case_ref, launched.flow_run_id, **script)


def _open_cases(db: Database, resident: str) -> dict[str, str]:
    """intervention -> case ref of the resident's open cases."""
    with db.transaction() as session:
        rows = session.scalars(select(Case).where(Case.resident_ref == resident, Case.status == "open"))
        return {c.intervention: c.ref for c in rows}


def _follow_ons(db: Database, case: Case) -> list[dict[str, str]]:
    with db.transaction() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.case_id == case.id, AuditEntry.action == "follow-on")
        )
        return [e.detail for e in entries]


# --- fine, through the CLI -----------------------------------------------------------------------


@every_backend
def test_fine_after_the_worker_checks_plans_the_next_check(
    prefect_server: None, registry: Database, mail: MailCapture, results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Launched like `yeongye launch outreach`, by complex D's coordinator. The volunteer pair cannot
    go, the 행정복지센터 checks: fine, next check in a month, closure. The 행정복지센터 knows whom to
    visit; Prefect does not."""
    _deploy()
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-d"))
    launched = CliRunner().invoke(app, ["launch", "outreach", "--complex", "D", "--resident", "R-D-001"])
    assert launched.exit_code == 0, launched.output
    case_ref = re.search(r"C-\d{4}-\d{4}", launched.output).group(0)  # type: ignore[union-attr]
    flow_run_id = re.search(r"/runs/flow-run/([0-9a-f-]{36})", launched.output).group(1)  # type: ignore[union-attr]

    answers, case = _drive(
        registry,
        case_ref,
        flow_run_id,
        rejections={"check-1"},
        outcomes={"check-1-community-center": outreach_flow.FINE},
    )

    assert (case.status, case.outcome) == ("closed", "fine-next-check-planned")
    assert referral_steps(registry, case) == {
        "check-1": ("gaon-volunteer-1", "rejected", None),
        "check-1-community-center": ("gaon-cc-1", "completed", "fine"),
        "next-check-1m": ("gaon-volunteer-1", "completed", None),
    }
    assert [k for k in answers.waits if k.startswith("decision")] == ["decision-closure-1-1"]
    with registry.transaction() as session:
        resident = session.get(Resident, "R-D-001")
        assert resident is not None
        personal = [resident.name, resident.phone]
    emails = {m.headers["X-Yeongye-Key"]: m.text for m in read_captured(mail.mail_dir)}
    # The 행정복지센터 (a public body, 고독사예방법 §13) learns whom to visit; the volunteers do not.
    assert all(needle in emails[f"{case_ref}:check-1-community-center:gaon-cc-1"] for needle in personal)
    assert not any(needle in emails[f"{case_ref}:check-1:gaon-volunteer-1"] for needle in personal)
    assert_not_in_prefect(personal, results_dir)


# --- needs a service -----------------------------------------------------------------------------


def test_needs_hoarding_opens_a_hoarding_case_for_the_same_resident(prefect_server: None, registry: Database) -> None:
    _answers, case = _run(registry, "R-A-001", outcomes={"check-1": outreach_flow.NEEDS_HOARDING})

    assert case.outcome == "linked-hoarding"
    follow_on = _open_cases(registry, "R-A-001")["hoarding"]
    assert read_case(registry, follow_on).flow_run_id
    assert _follow_ons(registry, case) == [{"intervention": "hoarding", "status": "launched", "follow_on": follow_on}]


def test_needs_mental_health_with_an_open_counselling_case_records_it(prefect_server: None, registry: Database) -> None:
    """The resident already has an open counselling case: no second one, the existing one is recorded."""
    _deploy()
    existing = steering.launch(
        registry,
        intervention="mh-counselling",
        complex_code="B",
        resident_ref="R-B-001",
        by=coordinator_of(registry, "B"),
    )

    _answers, case = _run(registry, "R-B-001", outcomes={"check-1": outreach_flow.NEEDS_MENTAL_HEALTH})

    assert case.outcome == "linked-mh-counselling"
    assert _open_cases(registry, "R-B-001") == {"mh-counselling": existing.case_ref}
    assert _follow_ons(registry, case) == [
        {"intervention": "mh-counselling", "status": "already-open", "follow_on": existing.case_ref}
    ]


def test_needs_jobs_opens_a_job_placement_case(prefect_server: None, registry: Database) -> None:
    _answers, case = _run(registry, "R-C-001", outcomes={"check-1": outreach_flow.NEEDS_JOBS})

    assert case.outcome == "linked-job-placement"
    follow_on = _open_cases(registry, "R-C-001")["job-placement"]
    assert read_case(registry, follow_on).flow_run_id
    assert _follow_ons(registry, case) == [
        {"intervention": "job-placement", "status": "launched", "follow_on": follow_on}
    ]


def test_needs_supplies_hands_off_to_the_welfare_centre(prefect_server: None, registry: Database) -> None:
    _answers, case = _run(registry, "R-E-001", outcomes={"check-1": outreach_flow.NEEDS_SUPPLIES})

    assert case.outcome == "supplies-provided"
    assert referral_steps(registry, case) == {
        "check-1": ("gaon-volunteer-1", "completed", "needs-service-supplies"),
        "supplies": ("gaon-wc-1", "completed", None),
    }


# --- no contact: repeat, door check, police / 119 ------------------------------------------------


def test_no_contact_repeats_within_24_hours_then_door_then_police_emergency(
    prefect_server: None, registry: Database
) -> None:
    """Nobody could do the first check (counts as no contact); the repeat finds nobody; nobody
    answers the door; the police find an emergency. The supervisor is asked to approve closure.
    From the first "no contact" on, each step is due in hours, not business days."""
    started = calendar.SystemClock().now()
    answers, case = _run(
        registry,
        "R-F-001",
        rejections={"check-1", "check-1-community-center"},
        outcomes={
            "check-2": outreach_flow.NO_CONTACT,
            "door-check-1": outreach_flow.NO_ANSWER,
            "welfare-check-1": outreach_flow.FOUND_EMERGENCY,
        },
    )
    finished = calendar.SystemClock().now()

    assert case.outcome == "emergency-handled-by-police"
    steps = referral_steps(registry, case)
    assert list(steps) == ["check-1", "check-1-community-center", "check-2", "door-check-1", "welfare-check-1"]
    assert steps["welfare-check-1"] == ("gaon-police-1", "completed", "found-emergency")
    with registry.transaction() as session:
        days = business_calendar(session)
        referrals = {r.step: r for r in session.scalars(select(Referral).where(Referral.case_id == case.id))}
    for step, hours in (
        ("check-2", outreach_flow.REPEAT_CHECK_HOURS),
        ("door-check-1", outreach_flow.DOOR_CHECK_HOURS),
        ("welfare-check-1", outreach_flow.WELFARE_CHECK_HOURS),
    ):
        due_at = referrals[step].due_at
        assert due_at is not None, step
        due_at = due_at.replace(tzinfo=due_at.tzinfo or dt.UTC)
        assert started + dt.timedelta(hours=hours) <= due_at <= finished + dt.timedelta(hours=hours), step
    today = calendar.today(calendar.SystemClock())
    assert referrals["check-1"].due_at is None  # the first check is routine: business days
    assert referrals["check-1"].due_date == days.add_business_days(today, 5)  # the agency type's default
    assert "decision-closure-1-1" in answers.waits


# The repeat itself is covered above; here one check without contact goes straight to the door (faster).
NO_CONTACT = {"check-1": outreach_flow.NO_CONTACT}


@pytest.mark.parametrize(
    ("resident", "outcomes", "rejections", "expected", "last_step"),
    [
        pytest.param(
            "R-A-002",
            {"door-check-1": "found-fine"},
            set(),
            "fine-after-door-check",
            ("next-check-1m", "gaon-volunteer-1", "completed", None),
            id="door-found-fine",
        ),
        pytest.param(
            "R-B-002",
            {"door-check-1": "found-needs-help", "needs-assessment-1": "needs-service-jobs"},
            set(),
            "linked-job-placement",
            ("needs-assessment-1", "gaon-cc-1", "completed", "needs-service-jobs"),
            id="door-found-needs-help-assessed",
        ),
        pytest.param(
            "R-C-002",
            {"door-check-1": "found-needs-help"},
            {"needs-assessment-1"},
            "needs-assessment-not-done",
            ("needs-assessment-1", "gaon-cc-1", "rejected", None),
            id="door-found-needs-help-not-assessed",
        ),
        pytest.param(
            "R-D-002",
            {"door-check-1": "no-answer", "welfare-check-1-fire-119": "found-safe"},
            {"welfare-check-1"},
            "safe-after-welfare-check",
            ("next-check-1m", "gaon-volunteer-1", "completed", None),
            id="police-declines-119-finds-safe",
        ),
        pytest.param(
            "R-E-002",
            {"door-check-1": "no-answer"},
            {"welfare-check-1", "welfare-check-1-fire-119"},
            "welfare-check-not-done",
            ("welfare-check-1-fire-119", "gaon-119-1", "rejected", None),
            id="no-welfare-check",
        ),
        pytest.param(
            "R-F-002",
            {"door-check-1": "no-answer", "welfare-check-1": "not-found", "address-1": "unknown"},
            set(),
            "cannot-locate-monitoring",
            ("address-1", "gaon-cc-1", "completed", "unknown"),
            id="police-not-found-address-unknown",
        ),
    ],
)
def test_no_contact_escalates(
    prefect_server: None,
    registry: Database,
    monkeypatch: pytest.MonkeyPatch,
    resident: str,
    outcomes: dict[str, str],
    rejections: set[str],
    expected: str,
    last_step: tuple[str, str, str, str | None],
) -> None:
    monkeypatch.setattr(outreach_flow, "NO_CONTACT_CHECKS", 1)
    _answers, case = _run(registry, resident, outcomes={**NO_CONTACT, **outcomes}, rejections=rejections)

    assert case.outcome == expected
    steps = referral_steps(registry, case)
    assert list(steps)[:2] == ["check-1", "door-check-1"]
    step, *reported = last_step
    assert list(steps)[-1] == step and steps[step] == tuple(reported)


# --- cannot locate -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resident", "outcomes", "expected", "steps"),
    [
        pytest.param(
            "R-A-003",
            {"check-1": "cannot-locate", "address-1": "located-new-address", "check-2": "fine"},
            "fine-next-check-planned",
            ["check-1", "address-1", "check-2", "next-check-1m"],
            id="located-then-fine",
        ),
        pytest.param(
            "R-B-003",
            {"check-1": "cannot-locate", "address-1": "moved-out"},
            "moved-out-referred",
            ["check-1", "address-1"],
            id="moved-out",
        ),
        pytest.param(
            "R-C-003",
            {"check-1": "cannot-locate", "address-1": "unknown"},
            "cannot-locate-monitoring",
            ["check-1", "address-1"],
            id="unknown",
        ),
        pytest.param(
            "R-D-003",
            {
                "check-1": "cannot-locate",
                "address-1": "located-new-address",
                "check-2": "cannot-locate",
                "address-2": "located-new-address",
                "check-3": "cannot-locate",
            },
            "cannot-locate-monitoring",
            ["check-1", "address-1", "check-2", "address-2", "check-3"],
            id="lost-again-after-two-addresses",
        ),
    ],
)
def test_cannot_locate_is_its_own_branch(
    prefect_server: None, registry: Database, resident: str, outcomes: dict[str, str], expected: str, steps: list[str]
) -> None:
    _answers, case = _run(registry, resident, outcomes=outcomes)

    assert case.outcome == expected
    assert case.outcome != "not-eligible"
    assert list(referral_steps(registry, case)) == steps
