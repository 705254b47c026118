"""Housing support (주거지원): the need→agency table, every branch of the flow, and the CLI.

Each case runs in this process against the real Prefect server, SMTP server and registry, and is
answered the way people would answer it (``yeongye housing needs`` / ``respond --outcome`` / ``approve``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from flows.housing import flow as housing_flow
from flows.housing.flow import housing_support
from flows.outreach import flow as outreach_flow
from flows.outreach.flow import outreach
from registry import calendar, detection, housing
from registry.catalog import AGENCY_TYPE_CODES, SERVICES
from registry.db import Database
from registry.models import AuditEntry, Case, CaseFinding, Referral, Resident
from tasks.runtime import business_calendar
from tests.driving import Answers, assert_not_in_prefect, coordinator_of, drive, read_case, token_of
from yeongye import steering
from yeongye.cli import app
from yeongye.mailcapture import MailCapture, read_captured

runner = CliRunner()
SIGNALS_HEADER = (
    "resident_ref,complex_code,fee_arrears_months,rent_arrears_months,days_without_contact,"
    "power_cut,water_cut,gas_cut,odour_pest_complaints,lives_alone,birth_year"
)


# --- the table ------------------------------------------------------------------------------------


def test_every_need_names_a_known_agency_type_and_service() -> None:
    for code, support in housing.NEEDS.items():
        assert support.agency_type in AGENCY_TYPE_CODES, code
        assert support.service in SERVICES, code
        assert housing.label(code).startswith(support.name_ko)
    # The brief's routes: donors for arrears, the 행정복지센터 for 긴급지원·주거급여, the 주거안심종합센터
    # for moving costs and 주거상향, LH for moves between rentals, modification and repairs.
    routes = {code: (s.agency_type, s.service) for code, s in housing.NEEDS.items()}
    assert routes["arrears"] == ("private-donor", "arrears-relief")
    assert routes["emergency"] == ("community-center", "emergency-support")
    assert routes["housing-cost"] == ("community-center", "housing-benefit")
    assert routes["moving-cost"] == ("housing-safety", "moving-cost")
    assert routes["upgrade"] == ("housing-safety", "housing-upgrade")
    assert {routes[c][0] for c in ("transfer", "home-modification", "repairs")} == {"lh"}


def test_needs_of_one_agency_type_go_in_separate_waves() -> None:
    """A step asks each agency once: a second need of a type waits for the next wave."""
    waves = housing.handoff_waves(["repairs", "arrears", "home-modification", "housing-cost", "emergency"])
    assert [[s.service for s in wave] for wave in waves] == [
        ["arrears-relief", "emergency-support", "home-modification"],
        ["housing-benefit", "repairs"],
    ]
    assert housing.handoff_waves([]) == []


# --- the flow -------------------------------------------------------------------------------------


def _deploy() -> None:
    for flow in (housing_support, outreach):
        flow.to_deployment(name=flow.name).apply()


def _record(db: Database, resident: str, *options: str) -> None:
    """The coordinator records needs with the CLI (YEONGYE_TOKEN set by the test)."""
    result = runner.invoke(app, ["housing", "needs", _case_of(db, resident), *options])
    assert result.exit_code == 0, result.output


def _assess(
    db: Database, resident: str, *rounds: tuple[str, ...] | None
) -> Callable[[steering.Wait], tuple[bool, str]]:
    """A decision script: at each needs decision, record that round's options (None: reject it)."""

    def decide(wait: steering.Wait) -> tuple[bool, str]:
        if wait.key.startswith("decision-housing-needs"):
            round_ = int(wait.key.split("-")[3])
            options = rounds[round_ - 1]
            if options is None:
                return False, "해결할 주거 욕구 없음 (no housing need to meet)"
            if options:
                _record(db, resident, *options)
        return True, ""

    return decide


def _case_of(db: Database, resident: str) -> str:
    with db.transaction() as session:
        ref = session.scalar(
            select(Case.ref).where(
                Case.resident_ref == resident, Case.intervention == "housing-support", Case.status == "open"
            )
        )
    assert ref is not None
    return ref


def _drive(db: Database, case_ref: str, flow_run_id: str, **script: object) -> tuple[Answers, Case]:
    answers = Answers(db, case_ref, **script)  # type: ignore[arg-type]
    final = drive(answers, flow_run_id, flow=housing_support, max_waits=40)
    assert final.state is not None and final.state.is_completed(), final.state
    return answers, read_case(db, case_ref)


def _run(db: Database, resident: str, **script: object) -> tuple[Answers, Case]:
    _deploy()
    launched = steering.launch(
        db,
        intervention="housing-support",
        complex_code=resident[2],
        resident_ref=resident,
        by=coordinator_of(db, resident[2]),
    )
    return _drive(db, launched.case_ref, launched.flow_run_id, **script)


def _referrals(db: Database, case: Case) -> list[tuple[str, str, str, str, str | None]]:
    """(step, agency, service, status, outcome) of every referral, in order."""
    with db.transaction() as session:
        rows = session.scalars(select(Referral).where(Referral.case_id == case.id).order_by(Referral.id))
        return [(r.step, r.agency_id, r.service, r.status, r.outcome) for r in rows]


def _in_a_month(db: Database) -> dt.date:
    with db.transaction() as session:
        return business_calendar(session).add_months(calendar.today(calendar.SystemClock()), 1)


def test_arrears_found_by_the_sweep_are_relieved_and_the_move_referred(
    prefect_server: None,
    registry: Database,
    mail: MailCapture,
    results_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 12's acceptance: R-D-001 has 4 months of management-fee arrears. The sweep flags them and
    opens an outreach case; the volunteers find a housing need, which opens housing support. The
    coordinator records the arrears and a moving cost; a donor relieves the arrears, the
    주거안심종합센터 takes the moving cost, and the visit a month later finds it settled: closure."""
    _deploy()
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-d"))
    signals = tmp_path / "signals.csv"
    signals.write_text(f"{SIGNALS_HEADER}\nR-D-001,D,4,0,0,0,0,0,0,,\n", encoding="utf-8")
    report = detection.sweep(registry, signals, now=calendar.SystemClock().now())
    assert len(report.new_case_refs) == 1
    launched = steering.launch_pending_outreach(registry)
    assert len(launched.launched) == 1
    visit = read_case(registry, launched.launched[0])
    assert visit.intervention == "outreach" and visit.flow_run_id

    answers = Answers(registry, visit.ref, outcomes={"check-1": outreach_flow.NEEDS_HOUSING})
    final = drive(answers, str(visit.flow_run_id), flow=outreach, max_waits=20)
    assert final.state is not None and final.state.is_completed(), final.state
    assert read_case(registry, visit.ref).outcome == "linked-housing-support"

    case_ref = _case_of(registry, "R-D-001")
    housing_case = read_case(registry, case_ref)
    assert housing_case.opened_by == f"case:{visit.ref}" and housing_case.flow_run_id
    answers, case = _drive(
        registry,
        case_ref,
        housing_case.flow_run_id,
        on_decision=_assess(registry, "R-D-001", ("--arrears", "--moving-cost")),
        outcomes={"housing-check-1": housing_flow.SETTLED},
    )

    assert (case.status, case.outcome) == ("closed", "housing-settled")
    assert _referrals(registry, case) == [
        ("housing-1", "gaon-donor-1", "arrears-relief", "completed", None),
        ("housing-1", "gaon-housing-1", "moving-cost", "completed", None),
        ("housing-check-1", "gaon-mgmt-1", "housing-check", "completed", "settled"),
    ]
    assert [k for k in answers.waits if not k.startswith("answer")] == [
        "consent-1",
        "decision-housing-needs-1-1-1",
        "decision-closure-1-1",
    ]
    with registry.transaction() as session:
        due = {r.step: r.due_date for r in session.scalars(select(Referral).where(Referral.case_id == case.id))}
        resident = session.get(Resident, "R-D-001")
        assert resident is not None
        personal = [resident.name, resident.phone]
    assert due["housing-check-1"] == _in_a_month(registry)
    assert due["housing-1"] < due["housing-check-1"]
    # The donor and the centre learn whom to help (the consent names them); Prefect never does.
    emails = {m.headers["X-Yeongye-Key"]: m for m in read_captured(mail.mail_dir)}
    donor = emails[f"{case_ref}:housing-1:gaon-donor-1"]
    assert SERVICES["arrears-relief"][0] in donor.subject + donor.text and resident.name in donor.text
    assert_not_in_prefect(personal, results_dir)


def test_repairs_and_modification_go_to_lh_one_after_the_other_and_a_decline_moves_on(
    prefect_server: None, registry: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two needs for LH and two for the 행정복지센터: two waves, each with one of each, the same first
    agency both times. The first 행정복지센터 declines the 긴급지원: the next one takes it."""
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-d"))
    options = ("--emergency", "--housing-cost", "--home-modification", "--repairs")

    def decline_emergency(wait: steering.Wait) -> tuple[str, str, str]:
        if wait.step == "housing-1" and "gaon-cc-1" in wait.agencies:
            return "gaon-cc-1", "rejected", "긴급지원 대상 아님 (not eligible)"
        return wait.agencies[0], "completed", "완료"

    _answers, case = _run(
        registry,
        "R-D-002",
        on_decision=_assess(registry, "R-D-002", options),
        on_answer=decline_emergency,
        outcomes={"housing-check-1": housing_flow.SETTLED},
    )

    assert case.outcome == "housing-settled"
    assert _referrals(registry, case) == [
        ("housing-1", "gaon-cc-1", "emergency-support", "rejected", None),
        ("housing-1", "gaon-lh-1", "home-modification", "completed", None),
        ("housing-1", "gaon-cc-2", "emergency-support", "completed", None),
        ("housing-1-2", "gaon-cc-1", "housing-benefit", "completed", None),
        ("housing-1-2", "gaon-lh-1", "repairs", "completed", None),
        ("housing-check-1", "gaon-mgmt-1", "housing-check", "completed", "settled"),
    ]


@pytest.mark.parametrize(
    ("second_visit", "expected"),
    [
        pytest.param(housing_flow.SETTLED, "housing-settled", id="settled-in-the-second-round"),
        pytest.param(housing_flow.NOT_SETTLED, "housing-not-settled", id="not-settled-after-two-rounds"),
    ],
)
def test_not_settled_gets_one_more_round_for_what_remains(
    prefect_server: None,
    registry: Database,
    monkeypatch: pytest.MonkeyPatch,
    second_visit: str,
    expected: str,
) -> None:
    """The visit finds the move not done: the coordinator records the arrears as paid and confirms;
    only the move is handed off again, and a second visit decides the closure."""
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-d"))
    rounds = (("--arrears", "--upgrade"), ("--no-arrears",))
    _answers, case = _run(
        registry,
        "R-D-003",
        on_decision=_assess(registry, "R-D-003", *rounds),
        outcomes={"housing-check-1": housing_flow.NOT_SETTLED, "housing-check-2": second_visit},
    )

    assert case.outcome == expected
    assert [(step, service, outcome) for step, _, service, _, outcome in _referrals(registry, case)] == [
        ("housing-1", "arrears-relief", None),
        ("housing-1", "housing-upgrade", None),
        ("housing-check-1", "housing-check", "not-settled"),
        ("housing-2", "housing-upgrade", None),
        ("housing-check-2", "housing-check", second_visit),
    ]
    with registry.transaction() as session:
        assert housing.needs_of(session, case) == ("upgrade",)
        audited = session.scalars(
            select(AuditEntry.detail).where(AuditEntry.case_id == case.id, AuditEntry.action == "housing-needs")
        ).all()
    assert [entry["needs"] for entry in audited] == [["arrears", "upgrade"], ["upgrade"]]


def test_a_visit_nobody_made_is_not_settled_and_a_rejected_review_closes(
    prefect_server: None, registry: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 관리사무소 cannot visit: that is no proof the need is settled, so the coordinator reviews;
    rejecting the review (nothing more the handoffs can do) closes the case as not settled."""
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-d"))
    _answers, case = _run(
        registry,
        "R-D-001",
        on_decision=_assess(registry, "R-D-001", ("--transfer",), None),
        rejections={"housing-check-1"},
    )

    assert case.outcome == "housing-not-settled"
    assert _referrals(registry, case) == [
        ("housing-1", "gaon-lh-1", "rental-transfer", "completed", None),
        ("housing-check-1", "gaon-mgmt-1", "housing-check", "rejected", None),
    ]


def test_a_confirmation_without_needs_asks_again_and_a_rejection_closes(
    prefect_server: None, registry: Database
) -> None:
    """The coordinator confirms before recording anything: asked again. Then rejects (the resident
    has no need the handoffs can meet): closure without a referral."""
    decisions: list[str] = []

    def confirm_then_reject(wait: steering.Wait) -> tuple[bool, str]:
        if wait.key.startswith("decision-housing-needs"):
            decisions.append(wait.key)
            if len(decisions) == 2:
                return False, "본인이 원하지 않음 (declined)"
        return True, ""

    _answers, case = _run(registry, "R-E-003", on_decision=confirm_then_reject)

    assert case.outcome == "needs-not-assessed"
    assert decisions == ["decision-housing-needs-1-1-1", "decision-housing-needs-1-2-1"]
    assert _referrals(registry, case) == []


def test_consent_refused_twice_closes_after_a_re_approach(prefect_server: None, registry: Database) -> None:
    answers, case = _run(registry, "R-C-001", on_consent=lambda wait: (False, "resident"))

    assert case.outcome == "consent-refused-monitoring"
    assert _referrals(registry, case) == [("re-approach-1", "gaon-mgmt-1", "monitoring-visit", "completed", None)]
    assert [k for k in answers.waits if k.startswith("consent")] == ["consent-1", "consent-2"]


# --- the CLI --------------------------------------------------------------------------------------


def test_launch_from_the_cli_and_bad_needs_write_nothing(
    prefect_server: None, registry: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`yeongye launch housing-support` as complex D's coordinator; `housing needs` refuses a case of
    another intervention, an unknown case, no option, and a coordinator of another centre."""
    _deploy()
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-d"))
    launched = runner.invoke(app, ["launch", "housing-support", "--complex", "D", "--resident", "R-D-003"])
    assert launched.exit_code == 0, launched.output
    case_ref = re.search(r"C-\d{4}-\d{4}", launched.output).group(0)  # type: ignore[union-attr]
    flow_run_id = re.search(r"/runs/flow-run/([0-9a-f-]{36})", launched.output).group(1)  # type: ignore[union-attr]
    other = steering.launch(
        registry, intervention="outreach", complex_code="D", resident_ref="R-D-002", by=coordinator_of(registry, "D")
    )

    wrong = runner.invoke(app, ["housing", "needs", other.case_ref, "--arrears"])
    unknown = runner.invoke(app, ["housing", "needs", "C-2026-9999", "--arrears"])
    nothing = runner.invoke(app, ["housing", "needs", case_ref])
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-a"))
    elsewhere = runner.invoke(app, ["housing", "needs", case_ref, "--arrears"])

    assert [r.exit_code for r in (wrong, unknown, nothing, elsewhere)] == [2, 2, 2, 2]
    said = [" ".join(r.output.split()) for r in (wrong, unknown, nothing, elsewhere)]  # rich wraps lines
    assert "not a housing-support case" in said[0]
    assert "case: 사례 'C-2026-9999'" in said[1]
    assert "needs:" in said[2] and "nothing to record" in said[2]
    assert "housing needs" in said[3]
    with registry.transaction() as session:
        assert session.scalars(select(CaseFinding)).all() == []

    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-d"))
    _answers, case = _drive(
        registry,
        case_ref,
        flow_run_id,
        on_decision=_assess(registry, "R-D-003", ("--repairs",)),
        outcomes={"housing-check-1": housing_flow.SETTLED},
    )
    assert (case.intervention, case.outcome) == ("housing-support", "housing-settled")
    with registry.transaction() as session:
        recorded = session.scalar(
            select(AuditEntry).where(AuditEntry.case_id == case.id, AuditEntry.action == "housing-needs-recorded")
        )
        assert recorded is not None and recorded.actor == "coord-d"
        assert recorded.detail == {"added": ["repairs"], "removed": [], "holds": ["repairs"]}
