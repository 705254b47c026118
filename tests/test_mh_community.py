"""Community mental health: counselling, dementia screening and a joint programme, driven end to end.

Each case runs in this process against the real Prefect server, SMTP server and registry, and is
answered the way people would answer it (``yeongye respond`` / ``approve`` / ``program``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey
from sqlalchemy import func, select
from typer.testing import CliRunner

from flows.mental_health import counselling, dementia, program
from registry import calendar, cases, programs
from registry.calendar import BusinessCalendar
from registry.catalog import SERVICES
from registry.db import Database
from registry.models import (
    AuditEntry,
    Case,
    ProgramAttendance,
    ProgramParticipant,
    ProgramSession,
    Referral,
    Resident,
)
from tests.conftest import every_backend
from tests.driving import Script, assert_not_in_prefect, drive, read_case, referral_steps
from yeongye import steering
from yeongye.cli import app
from yeongye.mailcapture import MailCapture, read_captured

runner = CliRunner()


@dataclass
class Answers(Script):
    """A script that also reports outcomes: ``outcomes`` maps a step to what its agency reports."""

    outcomes: dict[str, str] = field(default_factory=dict)
    rejections: dict[str, str] = field(default_factory=dict)

    def answer(self, wait: steering.Wait) -> None:
        if wait.kind == "answer" and wait.step in self.rejections:
            self.waits.append(wait.key)
            reason = self.rejections[wait.step]
            steering.respond(self.db, self.case_ref, agency_id=wait.agencies[0], status="rejected", reason=reason)
        elif wait.kind == "answer" and wait.step in self.outcomes:
            self.waits.append(wait.key)
            steering.respond(
                self.db,
                self.case_ref,
                agency_id=wait.agencies[0],
                status="completed",
                reason="완료",
                outcome=self.outcomes[wait.step],
            )
        else:
            super().answer(wait)


def _run(
    db: Database, flow: Flow[..., Any], complex_code: str, resident: str | None, **script: Any
) -> tuple[Answers, Case]:
    """Deploy the flow, launch a case as `yeongye launch` does, and answer it until it finishes."""
    flow.to_deployment(name=flow.name).apply()
    launched = steering.launch(db, intervention=flow.name, complex_code=complex_code, resident_ref=resident)
    answers = Answers(db, launched.case_ref, **script)
    final = drive(answers, launched.flow_run_id, flow=flow, max_waits=30)
    assert final.state is not None and final.state.is_completed(), final.state
    return answers, read_case(db, launched.case_ref)


def _mail(mail: MailCapture, case_ref: str, step: str, agency_id: str) -> tuple[str, str]:
    """(subject, text) of the one email a step sent an agency."""
    found = [m for m in read_captured(mail.mail_dir) if m.headers["X-Yeongye-Key"] == f"{case_ref}:{step}:{agency_id}"]
    assert len(found) == 1, (step, agency_id, len(found))
    return found[0].subject, found[0].text


def _resident(db: Database, ref: str) -> Resident:
    with db.transaction() as session:
        resident = session.get(Resident, ref)
        assert resident is not None
        return resident


# --- counselling -------------------------------------------------------------------------------


@every_backend
def test_counselling_re_approach_then_consent_discloses_only_to_the_consented(
    prefect_server: None, registry: Database, mail: MailCapture, results_dir: Path
) -> None:
    """Refused once: the management office visits knowing neither who nor what for. Consent given
    at the re-approach: the centre learns who and why, and the disclosure is audited."""
    consents = iter([(False, "resident"), (True, "resident")])
    answers, case = _run(
        registry,
        counselling.mh_counselling,
        "D",
        "R-D-001",
        on_consent=lambda wait: next(consents),
        outcomes={"counselling": counselling.REGISTERED},
    )

    assert (case.status, case.outcome) == ("closed", "registered-at-centre")
    assert [k for k in answers.waits if k.startswith("consent")] == ["consent-1", "consent-2"]
    assert referral_steps(registry, case) == {
        "re-approach-1": ("gaon-mgmt-1", "completed", None),
        "counselling": ("gaon-mhwc-1", "completed", "registered"),
        "follow-up-1m": ("gaon-mgmt-1", "completed", None),
    }
    resident = _resident(registry, "R-D-001")
    personal = [resident.name, resident.phone, resident.unit]
    health = [SERVICES["mh-counselling"][0], "정신건강", "mh-counselling", "counselling"]

    subject, text = _mail(mail, case.ref, "re-approach-1", "gaon-mgmt-1")
    for needle in personal + health:
        assert needle not in subject + text, needle
    subject, text = _mail(mail, case.ref, "counselling", "gaon-mhwc-1")
    assert all(needle in text for needle in personal)
    assert SERVICES["mh-counselling"][0] in subject + text

    with registry.transaction() as session:
        disclosures = [
            a.detail
            for a in session.scalars(
                select(AuditEntry).where(AuditEntry.case_id == case.id, AuditEntry.action == "disclosure")
            )
        ]
    centre = [d for d in disclosures if d["agency"] == "gaon-mhwc-1"]
    assert len(centre) == 1 and centre[0]["basis"] == "written-consent" and "health" in centre[0]["fields"]
    # The management office is told once, at the follow-up after consent, never at the re-approach.
    assert [d["agency"] for d in disclosures].count("gaon-mgmt-1") == 1

    assert_not_in_prefect(personal, results_dir)


def test_counselling_consent_refused_twice_closes_without_the_centre(
    prefect_server: None, registry: Database, mail: MailCapture
) -> None:
    answers, case = _run(
        registry, counselling.mh_counselling, "B", "R-B-002", on_consent=lambda wait: (False, "resident")
    )

    assert case.outcome == "consent-refused-monitoring"
    assert set(referral_steps(registry, case)) == {"re-approach-1"}
    assert not any(to.startswith("mhwc") for m in read_captured(mail.mail_dir) for to in m.to)


def test_counselling_declined_by_resident_is_monitored_then_closed(prefect_server: None, registry: Database) -> None:
    _answers, case = _run(
        registry,
        counselling.mh_counselling,
        "A",
        "R-A-002",
        outcomes={"counselling": counselling.DECLINED_BY_RESIDENT},
    )

    assert case.outcome == "counselling-declined"
    assert referral_steps(registry, case) == {
        "counselling": ("gaon-mhwc-1", "completed", "declined-by-resident"),
        "monitoring": ("gaon-mgmt-1", "completed", None),
    }


def test_counselling_declined_by_the_centre_goes_to_the_supervisor(prefect_server: None, registry: Database) -> None:
    _answers, case = _run(
        registry, counselling.mh_counselling, "C", "R-C-001", rejections={"counselling": "관할 외 (outside our area)"}
    )

    assert case.outcome == "counselling-not-linked"
    assert referral_steps(registry, case) == {"counselling": ("gaon-mhwc-1", "rejected", None)}


def test_every_counselling_outcome_closes_the_case_with_a_named_outcome() -> None:
    assert set(counselling.CASE_OUTCOMES) == set(counselling.OUTCOMES)
    assert all(len(outcome) <= 32 for outcome in counselling.CASE_OUTCOMES.values())  # Case.outcome


# --- dementia screening ------------------------------------------------------------------------


def test_dementia_normal_result_plans_a_re_screen_in_a_year(prefect_server: None, registry: Database) -> None:
    _answers, case = _run(
        registry, dementia.dementia_screening, "D", "R-D-002", outcomes={"screening": dementia.NORMAL}
    )

    assert case.outcome == "screening-normal"
    steps = referral_steps(registry, case)
    assert steps == {
        "screening": ("gaon-dementia-1", "completed", "normal"),
        "re-screen-12m": ("gaon-dementia-1", "completed", None),
    }
    with registry.transaction() as session:
        due = session.scalar(select(Referral.due_date).where(Referral.step == "re-screen-12m"))
    assert due is not None and due >= calendar.today(calendar.SystemClock()) + dt.timedelta(days=360)


@pytest.mark.parametrize(
    ("result", "follow_ups"),
    [(dementia.COGNITIVE_DECLINE, {"follow-up-3m"}), (dementia.DEMENTIA_SUSPECTED, {"follow-up-1m", "follow-up-3m"})],
)
def test_dementia_result_not_normal_goes_to_diagnosis_and_follow_ups(
    prefect_server: None, registry: Database, result: str, follow_ups: set[str]
) -> None:
    _answers, case = _run(registry, dementia.dementia_screening, "D", "R-D-003", outcomes={"screening": result})

    assert case.outcome == result
    steps = referral_steps(registry, case)
    assert steps.pop("screening") == ("gaon-dementia-1", "completed", result)
    assert steps.pop("diagnosis") == ("gaon-dementia-1", "completed", None)
    assert set(steps) == follow_ups
    assert {agency for agency, _status, _outcome in steps.values()} == {"gaon-mgmt-1"}


# --- joint programme ---------------------------------------------------------------------------


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_program_recruits_isolated_residents_first_and_reports_counts(
    prefect_server: None, registry: Database, mail: MailCapture, results_dir: Path
) -> None:
    flow = program.mh_program
    flow.to_deployment(name=flow.name).apply()
    output = _cli("launch", "mh-program", "--complex", "D", "--sessions", "2")
    match = re.search(r"C-\d{4}-\d{4}", output)
    assert match, output
    case_ref = match.group(0)

    def decide(wait: steering.Wait) -> tuple[bool, str]:
        if wait.key.startswith("decision-recruitment"):
            _cli("program", "enrol", case_ref, "--resident", "R-D-003", "--resident", "R-D-001")
        elif wait.key.startswith("decision-session-1"):
            _cli("program", "attend", case_ref, "--session", "1", "--resident", "R-D-003", "--resident", "R-D-001")
        elif wait.key.startswith("decision-session-2"):
            _cli("program", "attend", case_ref, "--session", "2", "--resident", "R-D-003")
            return False, "강사 사정으로 취소 (instructor unavailable)"
        return True, ""

    answers = Answers(registry, case_ref, on_decision=decide)
    with registry.transaction() as session:
        flow_run_id = cases.find_case(session, case_ref).flow_run_id
    assert flow_run_id
    final = drive(answers, flow_run_id, flow=flow, max_waits=30)
    assert final.state is not None and final.state.is_completed()
    assert final.parameters == {"case_ref": case_ref, "sessions": 2}

    case = read_case(registry, case_ref)
    assert (case.status, case.outcome, case.resident_ref) == ("closed", "program-completed", None)
    assert referral_steps(registry, case) == {
        "planning": ("gaon-mhwc-1", "completed", None),
        "report": ("gaon-mhwc-1", "completed", None),
    }
    assert [k.rsplit("-", 1)[0] for k in answers.waits if k.startswith("decision")] == [
        "decision-program-plan",
        "decision-recruitment",
        "decision-session-1",
        "decision-session-2",
        "decision-closure-1",
    ]
    with registry.transaction() as session:
        invited = session.execute(
            select(ProgramParticipant.resident_ref, ProgramParticipant.priority, ProgramParticipant.status).order_by(
                ProgramParticipant.priority
            )
        ).all()
        report = programs.summary(session, case)
    # Living alone first (R-D-003 born 1948, R-D-001 born 1969), then R-D-002 who lives with family.
    assert [tuple(row) for row in invited] == [
        ("R-D-003", 1, "enrolled"),
        ("R-D-001", 2, "enrolled"),
        ("R-D-002", 3, "invited"),
    ]
    assert [(s["status"], s["attended"]) for s in report["sessions"]] == [("held", 2), ("cancelled", 0)]
    assert (report["partner"], report["enrolled"], report["enrolled_alone"], report["attendances"]) == (
        "gaon-mhwc-1",
        2,
        2,
        2,
    )

    key = "program-" + case_ref.lower()
    with get_client(sync_client=True) as client:
        artifacts = client.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[key]))
        )
    assert len(artifacts) == 1 and "참여 (enrolled): 2명" in str(artifacts[0].data)

    shown = json.loads(_cli("program", "show", case_ref, "--json"))  # the coordinator's view, closed or not
    assert [(p["ref"], p["attended"]) for p in shown["roster"]] == [("R-D-003", 1), ("R-D-001", 1), ("R-D-002", 0)]
    assert shown["sessions_held"] == 1 and shown["roster"][0]["name"] == _resident(registry, "R-D-003").name

    _subject, text = _mail(mail, case_ref, "planning", "gaon-mhwc-1")
    assert "단지 단위 공동 프로그램" in text and "동의 범위 밖" not in text
    _subject, text = _mail(mail, case_ref, "report", "gaon-mhwc-1")
    assert SERVICES["mh-program-report"][0] in text
    names = [_resident(registry, ref) for ref in ("R-D-001", "R-D-002", "R-D-003")]
    assert_not_in_prefect([r.name for r in names] + [r.phone for r in names], results_dir)


def _program_rows(db: Database) -> tuple[int, int, int, int]:
    with db.transaction() as session:
        return (
            session.scalar(select(func.count(Case.id))) or 0,
            session.scalar(select(func.count(ProgramParticipant.id)).where(ProgramParticipant.status == "enrolled"))
            or 0,
            session.scalar(select(func.count(ProgramAttendance.id))) or 0,
            session.scalar(select(func.count(ProgramSession.id)).where(ProgramSession.status != "planned")) or 0,
        )


def test_bad_launch_and_program_input_exits_2_naming_the_option_and_writes_nothing(registry: Database) -> None:
    """No flow runs here: the registry refuses before Prefect is asked anything."""
    with registry.transaction() as session:
        now = calendar.SystemClock().now()
        group = cases.open_case(session, intervention="mh-program", complex_code="D", resident_ref=None, opened_at=now)
        programs.open_recruitment(
            session, group, sessions=2, seats=2, first_day=now.date(), days=BusinessCalendar(), at=now
        )
        programs.enrol(session, group, ["R-D-003"], at=now)
        resident_case = cases.open_case(
            session, intervention="mh-counselling", complex_code="D", resident_ref="R-D-001", opened_at=now
        )
        group_ref, resident_ref = group.ref, resident_case.ref
    before = _program_rows(registry)

    bad = {
        ("launch", "mh-counselling", "--complex", "D"): "--resident",
        ("launch", "mh-program", "--complex", "D", "--resident", "R-D-001"): "--resident",
        ("launch", "dementia-screening", "--complex", "D", "--resident", "R-D-002", "--sessions", "2"): "--sessions",
        ("launch", "mh-program", "--complex", "D", "--sessions", "40"): "--sessions",
        ("program", "enrol", group_ref, "--resident", "R-D-001", "--resident", "R-D-999"): "--resident",
        ("program", "enrol", group_ref, "--resident", "R-A-001"): "--resident",
        ("program", "enrol", resident_ref, "--resident", "R-D-001"): "case",
        ("program", "enrol", "C-2099-9999", "--resident", "R-D-001"): "case",
        ("program", "attend", group_ref, "--session", "3", "--resident", "R-D-003"): "--session",
        ("program", "attend", group_ref, "--session", "1", "--resident", "R-D-002"): "--resident",
        ("program", "attend", group_ref, "--session", "1", "--resident", "R-D-003", "--resident", "R-X"): "--resident",
    }
    for args, option in bad.items():
        result = runner.invoke(app, list(args))
        assert result.exit_code == 2, (args, result.output)
        assert option in result.output, (args, result.output)
    assert _program_rows(registry) == before

    # Once a session is confirmed, its attendance is final.
    with registry.transaction() as session:
        programs.record_session(session, cases.find_case(session, group_ref), 1, held=True, at=now)
    late = runner.invoke(app, ["program", "attend", group_ref, "--session", "1", "--resident", "R-D-003"])
    assert late.exit_code == 2 and "--session" in late.output


def test_invitation_order_and_monthly_session_dates() -> None:
    def resident(ref: str, born: int, alone: bool) -> Resident:
        return Resident(ref=ref, birth_year=born, lives_alone=alone)

    residents = [resident("R-1", 1940, False), resident("R-2", 1960, True), resident("R-3", 1950, True)]
    assert [r.ref for r in programs.invitation_order(residents)] == ["R-3", "R-2", "R-1"]

    days = BusinessCalendar()
    dates = programs.session_dates(dt.date(2026, 1, 2), 3, days)  # Friday
    assert dates == [dt.date(2026, 1, 2), dt.date(2026, 2, 2), dt.date(2026, 3, 3)]  # 3월 2일: 삼일절 대체공휴일
    assert all(days.is_business_day(d) for d in dates)
    with pytest.raises(cases.CaseError, match="sessions"):
        programs.session_dates(dt.date(2026, 1, 2), 0, days)
