"""Partner programmes for a complex, driven end to end: every branch of the flow, and the kinds' rules.

Each case runs in this process against the real Prefect server, SMTP server and registry, and is
answered the way people would answer it (``yeongye launch`` / ``respond`` / ``approve`` /
``program``). A flow run costs tens of seconds, so each one covers as much of the flow as it can.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic import command
from markdown_it import MarkdownIt
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey
from sqlalchemy import func, select
from typer.testing import CliRunner

from flows.programs.flow import program
from registry import cases, programs
from registry.calendar import SEOUL, BusinessCalendar, FixedClock, SystemClock
from registry.catalog import AGENCY_TYPE_CODES, SERVICES
from registry.db import Database, alembic_config
from registry.loader import SAMPLE_PATH
from registry.models import Case, ProgramAttendance, ProgramParticipant, ProgramSession, Referral, Resident
from tasks import runtime
from tests.driving import Script, assert_not_in_prefect, coordinator_of, drive, read_case, referral_steps, token_of
from yeongye import steering
from yeongye.cli import app
from yeongye.mailcapture import MailCapture, read_captured

runner = CliRunner()


@dataclass
class People(Script):
    """The default script, and a coordinator who skips a need when no agency of its type is left."""

    def answer(self, wait: steering.Wait) -> None:
        if wait.kind == "reroute":
            self.waits.append(wait.key)
            steering.reroute(self.db, self.case_ref, agency_id="", reason="건너뜀 (skipped)", by=self.coordinator)
        else:
            super().answer(wait)


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _launch(db: Database, kind: str) -> steering.Launched:
    """Deploy the flow and launch a programme of ``kind`` for complex D as `yeongye launch` does."""
    program.to_deployment(name=program.name).apply()
    return steering.launch(
        db,
        intervention=programs.PROGRAM,
        complex_code="D",
        resident_ref=None,
        program_kind=kind,
        by=coordinator_of(db, "D"),
    )


def _finish(people: People, launched: steering.Launched) -> Case:
    """Answer the case until its flow run completes; the case as it closed."""
    final = drive(people, launched.flow_run_id, flow=program, max_waits=30)
    assert final.state is not None and final.state.is_completed(), final.state
    return read_case(people.db, launched.case_ref)


def _decisions(people: People) -> list[str]:
    """The decisions asked, in order, without their turn."""
    return [key.rsplit("-", 1)[0] for key in people.waits if key.startswith("decision")]


def _mail_text(mail: MailCapture, case_ref: str, step: str, agency_id: str) -> str:
    """The text of the one email a step sent an agency."""
    found = [m for m in read_captured(mail.mail_dir) if m.headers["X-Yeongye-Key"] == f"{case_ref}:{step}:{agency_id}"]
    assert len(found) == 1, (step, agency_id, len(found))
    return found[0].subject + found[0].text


def _referrals(db: Database, case: Case) -> dict[tuple[str, str], tuple[str, str]]:
    """(step, agency) -> (service, status) of every referral of the case."""
    with db.transaction() as session:
        rows = session.scalars(select(Referral).where(Referral.case_id == case.id))
        return {(r.step, r.agency_id): (r.service, r.status) for r in rows}


def _resident(db: Database, ref: str) -> Resident:
    with db.transaction() as session:
        resident = session.get(Resident, ref)
        assert resident is not None
        return resident


# --- the flow, branch by branch ----------------------------------------------------------------


def test_mind_health_monthly_run_through_the_cli_recruits_isolated_first_and_reports_counts(
    prefect_server: None, registry: Database, mail: MailCapture, results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program.to_deployment(name=program.name).apply()
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-d"))  # complex D's coordinator, logged in
    output = _cli("launch", "program", "--complex", "D", "--kind", "mind-health", "--sessions", "2")
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

    people = People(registry, case_ref, on_decision=decide)
    with registry.transaction() as session:
        flow_run_id = cases.find_case(session, case_ref).flow_run_id
    assert flow_run_id
    final = drive(people, flow_run_id, flow=program, max_waits=30)
    assert final.state is not None and final.state.is_completed()
    assert final.parameters == {"case_ref": case_ref, "sessions": 2}

    case = read_case(registry, case_ref)
    assert (case.status, case.outcome, case.resident_ref, case.intervention, case.program_kind) == (
        "closed",
        "program-completed",
        None,
        "program",
        "mind-health",
    )
    assert referral_steps(registry, case) == {
        "planning": ("gaon-mhwc-1", "completed", None),
        "report": ("gaon-mhwc-1", "completed", None),
    }
    assert _decisions(people) == [
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
    assert (report["partners"], report["enrolled"], report["enrolled_alone"], report["attendances"]) == (
        ["gaon-mhwc-1"],
        2,
        2,
        2,
    )

    key = "program-" + case_ref.lower()
    with get_client(sync_client=True) as client:
        artifacts = client.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[key]))
        )
    assert len(artifacts) == 1
    # As Prefect's UI shows it: the markdown rendered (its values are escaped, tasks.case.escaped).
    shown = MarkdownIt("commonmark").enable("table").render(str(artifacts[0].data))
    assert shown.startswith(f"<h1>{case_ref} · 마음건강 교육 (mind-health education) 결과 보고")
    assert "참여 (enrolled): 2명" in shown

    # The roster shows names and phones: read by the logged-in coordinator, named in the audit trail.
    shown = _cli("program", "show", case_ref)  # the coordinator's view, closed or not
    assert "마음건강 교육 (mind-health education)" in shown and "gaon-mhwc-1" in shown
    roster = json.loads(_cli("program", "show", case_ref, "--json"))
    assert roster["kind"] == "mind-health"
    assert json.loads(_cli("case", case_ref, "--json"))["program_kind"] == "mind-health"
    assert [(p["ref"], p["attended"]) for p in roster["roster"]] == [("R-D-003", 1), ("R-D-001", 1), ("R-D-002", 0)]
    assert roster["sessions_held"] == 1 and roster["roster"][0]["name"] == _resident(registry, "R-D-003").name

    planning = _mail_text(mail, case_ref, "planning", "gaon-mhwc-1")
    assert "단지 단위 공동 프로그램: 마음건강 교육" in planning and "동의 범위 밖" not in planning
    assert SERVICES["program-planning"][0] in planning
    assert SERVICES["program-report"][0] in _mail_text(mail, case_ref, "report", "gaon-mhwc-1")
    names = [_resident(registry, ref) for ref in ("R-D-001", "R-D-002", "R-D-003")]
    assert_not_in_prefect([r.name for r in names] + [r.phone for r in names], results_dir)


def test_event_is_planned_with_every_partner_and_each_gets_the_report(
    prefect_server: None, registry: Database, mail: MailCapture
) -> None:
    """The 어버이날 event: four partners plan it in parallel, and each of them gets the report."""
    launched = _launch(registry, "event")

    def decide(wait: steering.Wait) -> tuple[bool, str]:
        with registry.transaction() as session:
            case = programs.program_case(session, launched.case_ref)
            if wait.key.startswith("decision-recruitment"):
                programs.enrol(session, case, ["R-D-002"], at=SystemClock().now())
            elif wait.key.startswith("decision-session-1"):
                programs.attend(session, case, 1, ["R-D-002"], at=SystemClock().now())
        return True, ""

    people = People(registry, launched.case_ref, on_decision=decide)
    case = _finish(people, launched)

    partners = ["gaon-cc-1", "gaon-wc-1", "gaon-ssc-1", "gaon-rescomm-1"]  # the kind's partner types, in order
    assert case.outcome == "program-completed"
    assert _decisions(people) == [
        "decision-program-plan",
        "decision-recruitment",
        "decision-session-1",
        "decision-closure-1",
    ]
    with registry.transaction() as session:
        report = programs.summary(session, case)
    assert report["partners"] == partners  # the lead first, whatever order the answers came in
    assert report["kind_title"] == "어버이날·가정의 달 행사 (Parents' Day and family-month event)"
    assert (report["sessions_planned"], report["enrolled"], report["attendances"]) == (1, 1, 1)
    assert _referrals(registry, case) == {
        **{("planning", a): ("program-planning", "completed") for a in partners},
        **{("report", a): ("program-report", "completed") for a in partners},
    }
    for agency in partners:
        assert "어버이날·가정의 달 행사" in _mail_text(mail, case.ref, "planning", agency)
        assert SERVICES["program-report"][0] in _mail_text(mail, case.ref, "report", agency)


@pytest.fixture
def friday_before_chuseok() -> Iterator[None]:
    """The flow's clock on Friday 2026-09-18, a week before 추석 (the holidays of 09-24 to 09-26)."""
    runtime.use_clock(FixedClock(dt.datetime(2026, 9, 18, 9, 0, tzinfo=SEOUL)))
    try:
        yield
    finally:
        runtime.use_clock(SystemClock())


# The weekly meal from Friday 2026-09-18, by hand: 09-25 is 추석 → Monday 09-28; 10-02 is a Friday
# like any other; 10-09 is 한글날 → Monday 10-12; 10-16. Each week counts from the first Friday.
MEALS_FROM_0918 = ["2026-09-18", "2026-09-28", "2026-10-02", "2026-10-12", "2026-10-16"]


def test_meals_plans_weekly_business_days_and_closes_when_nobody_enrols(
    prefect_server: None, registry: Database, mail: MailCapture, friday_before_chuseok: None
) -> None:
    """A private donor and the 사회복지관 plan the weekly meal; recruitment ends with nobody enrolled."""
    launched = _launch(registry, "meals")
    people = People(registry, launched.case_ref)
    case = _finish(people, launched)

    assert (case.outcome, case.program_kind) == ("no-participants", "meals")
    assert _decisions(people) == ["decision-program-plan", "decision-recruitment", "decision-closure-1"]
    assert _referrals(registry, case) == {
        ("planning", "gaon-donor-1"): ("program-planning", "completed"),
        ("planning", "gaon-wc-1"): ("program-planning", "completed"),
    }
    with registry.transaction() as session:
        planned = [d.isoformat() for d in session.scalars(select(ProgramSession.planned_on).order_by("number"))]
        statuses = set(session.scalars(select(ProgramSession.status)))
        report = programs.summary(session, case)
    assert planned == MEALS_FROM_0918[: programs.KINDS["meals"].sessions]
    assert statuses == {"planned"}
    assert (report["partners"], report["invited"], report["enrolled"]) == (["gaon-donor-1", "gaon-wc-1"], 3, 0)
    for agency in ("gaon-donor-1", "gaon-wc-1"):
        assert "식사 지원" in _mail_text(mail, case.ref, "planning", agency)


def test_plan_not_approved_closes_after_the_partner_plans_again(prefect_server: None, registry: Database) -> None:
    """Culture: the supervisor turns the plan down, so there is no recruitment and no session; at
    closure the supervisor first sends the partner (the 문화재단) back to planning."""
    decisions = iter([(False, "예산 초과 (over budget)"), (False, "다른 공연 검토 (another show)"), (True, "")])
    launched = _launch(registry, "culture")
    people = People(registry, launched.case_ref, on_decision=lambda wait: next(decisions))
    case = _finish(people, launched)

    assert case.outcome == "plan-not-approved"
    assert _decisions(people) == ["decision-program-plan", "decision-closure-1", "decision-closure-2"]
    assert _referrals(registry, case) == {
        ("planning", "gaon-culture-1"): ("program-planning", "completed"),
        ("re-planning-1", "gaon-culture-1"): ("program-planning", "completed"),
    }
    with registry.transaction() as session:
        assert session.scalar(select(func.count(ProgramSession.id))) == 0
        assert session.scalar(select(func.count(ProgramParticipant.id))) == 0


def test_no_partner_closes_before_any_plan(prefect_server: None, registry: Database) -> None:
    """Culture: the district's only 문화재단 declines and the coordinator names no other."""
    launched = _launch(registry, "culture")
    people = People(
        registry, launched.case_ref, on_answer=lambda wait: (wait.agencies[0], "rejected", "예산 소진 (no budget left)")
    )
    case = _finish(people, launched)

    assert case.outcome == "no-partner"
    assert [k for k in people.waits if k.startswith("reroute")] == ["reroute-planning-culture-foundation-1"]
    assert _decisions(people) == ["decision-closure-1"]
    assert _referrals(registry, case) == {("planning", "gaon-culture-1"): ("program-planning", "rejected")}


# --- the rules, without a flow run -------------------------------------------------------------


def _program_rows(db: Database) -> tuple[int, int, int, int]:
    with db.transaction() as session:
        return (
            session.scalar(select(func.count(Case.id))) or 0,
            session.scalar(select(func.count(ProgramParticipant.id)).where(ProgramParticipant.status == "enrolled"))
            or 0,
            session.scalar(select(func.count(ProgramAttendance.id))) or 0,
            session.scalar(select(func.count(ProgramSession.id)).where(ProgramSession.status != "planned")) or 0,
        )


def test_bad_launch_and_program_input_exits_2_naming_the_option_and_writes_nothing(
    registry: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No flow runs here: the registry refuses before Prefect is asked anything."""
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-d"))  # complex D's coordinator, logged in
    with registry.transaction() as session:
        now = SystemClock().now()
        group = cases.open_case(
            session,
            intervention="program",
            complex_code="D",
            resident_ref=None,
            opened_at=now,
            program_kind="mind-health",
            by="coord-d",
        )
        programs.open_recruitment(
            session, group, sessions=2, seats=2, first_day=now.date(), days=BusinessCalendar(), at=now
        )
        programs.enrol(session, group, ["R-D-003"], at=now)
        resident_case = cases.open_case(
            session,
            intervention="mh-counselling",
            complex_code="D",
            resident_ref="R-D-001",
            opened_at=now,
            by="coord-d",
        )
        group_ref, resident_ref = group.ref, resident_case.ref
    before = _program_rows(registry)

    bad = {
        ("launch", "mh-counselling", "--complex", "D"): "--resident",
        ("launch", "program", "--complex", "D"): "--kind",
        ("launch", "program", "--complex", "D", "--kind", "picnic"): "--kind",
        ("launch", "mh-program", "--complex", "D"): "intervention",  # now a kind of programme
        ("launch", "program", "--complex", "D", "--kind", "event", "--resident", "R-D-001"): "--resident",
        ("launch", "hoarding", "--complex", "D", "--resident", "R-D-002", "--kind", "meals"): "--kind",
        ("launch", "dementia-screening", "--complex", "D", "--resident", "R-D-002", "--sessions", "2"): "--sessions",
        ("launch", "outreach", "--complex", "D", "--resident", "R-D-002", "--seats", "5"): "--seats",
        ("launch", "program", "--complex", "D", "--kind", "mind-health", "--sessions", "13"): "--sessions",
        ("launch", "program", "--complex", "D", "--kind", "meals", "--sessions", "53"): "--sessions",
        ("launch", "program", "--complex", "D", "--kind", "outing", "--seats", "0"): "--seats",
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

    unknown = runner.invoke(app, ["launch", "program", "--complex", "D", "--kind", "picnic"])
    assert "mind-health, outing, culture, meals, event" in unknown.output  # the kinds to choose from

    # Once a session is confirmed, its attendance is final.
    with registry.transaction() as session:
        programs.record_session(session, cases.find_case(session, group_ref), 1, held=True, at=now)
    late = runner.invoke(app, ["program", "attend", group_ref, "--session", "1", "--resident", "R-D-003"])
    assert late.exit_code == 2 and "--session" in late.output


def test_invitation_order_and_session_dates_at_each_cadence() -> None:
    def resident(ref: str, born: int, alone: bool) -> Resident:
        return Resident(ref=ref, birth_year=born, lives_alone=alone)

    residents = [resident("R-1", 1940, False), resident("R-2", 1960, True), resident("R-3", 1950, True)]
    assert [r.ref for r in programs.invitation_order(residents)] == ["R-3", "R-2", "R-1"]

    days = BusinessCalendar()
    monthly = programs.session_dates(dt.date(2026, 1, 2), 3, "monthly", days)  # Friday
    assert monthly == [dt.date(2026, 1, 2), dt.date(2026, 2, 2), dt.date(2026, 3, 3)]  # 3월 2일: 삼일절 대체공휴일
    weekly = programs.session_dates(dt.date(2026, 9, 18), 5, "weekly", days)
    assert [d.isoformat() for d in weekly] == MEALS_FROM_0918
    assert len(programs.session_dates(dt.date(2026, 1, 2), 52, "weekly", days)) == 52
    for cadence, sessions in (("monthly", 0), ("monthly", 13), ("weekly", 53)):
        with pytest.raises(cases.CaseError, match="sessions"):
            programs.session_dates(dt.date(2026, 1, 2), sessions, cadence, days)  # type: ignore[arg-type]


def test_every_kind_has_agencies_of_its_partner_types_in_the_sample_district() -> None:
    sample = json.loads(SAMPLE_PATH.read_text(encoding="utf-8"))
    district_types = {agency["type"] for agency in sample["agencies"] if agency["district"] == "가온구"}
    assert set(programs.KINDS) == {"mind-health", "outing", "culture", "meals", "event"}
    for code, kind in programs.KINDS.items():
        assert kind.code == code
        assert kind.partners and len(set(kind.partners)) == len(kind.partners), code
        assert set(kind.partners) <= AGENCY_TYPE_CODES & district_types, code
        assert 1 <= kind.sessions <= programs.SESSIONS_PER_YEAR[kind.cadence] and kind.seats >= 1, code


def test_migration_turns_mh_program_cases_into_mind_health_programmes(tmp_path: Path) -> None:
    """0009 renames the cases (and their services) of the former mh-program; the downgrade undoes it."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0008")
    db = Database(url)
    # The rows a registry of that version held, written as it would have (today's code writes a
    # newer audit trail); sqlite3 leaves foreign keys unchecked, so the case needs no staff rows.
    connection = sqlite3.connect(tmp_path / "registry.db")
    with connection:
        connection.execute(
            'INSERT INTO "case" (id, ref, intervention, status, stage, complex_code, coordinator_id, supervisor_id,'
            " opened_at) VALUES (1, 'C-2026-0001', 'mh-program', 'open', 'planning', 'D', 'coord-d',"
            " 'supervisor-1', '2026-11-02')"
        )
        connection.execute(
            "INSERT INTO referral (case_id, step, agency_id, service, status, due_date, created_at, updated_at)"
            " VALUES (1, 'planning', 'gaon-mhwc-1', 'mh-program', 'requested', '2026-11-05', '2026-11-02',"
            " '2026-11-02')"
        )

    def row() -> tuple[str, ...]:
        return connection.execute(
            'SELECT c.intervention, r.service FROM "case" c JOIN referral r ON r.case_id = c.id'
        ).fetchone()

    command.upgrade(config, "head")
    assert row() == ("program", "program-planning")
    with db.transaction() as session:
        case = programs.program_case(session, "C-2026-0001")
        assert programs.kind_of(case).title == "마음건강 교육 (mind-health education)"
    command.downgrade(config, "0008")
    assert row() == ("mh-program", "mh-program")
    connection.close()
    db.dispose()
