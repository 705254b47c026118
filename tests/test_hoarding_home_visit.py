"""What a hoarding case's home visit finds sets the next steps: guardianship, an admission, the police.

The coordinator records the findings with ``yeongye hoarding findings`` (registry only) and confirms
them with ``yeongye approve``; the flow reads what they set in motion. Cases run in this process
against the real Prefect server, SMTP server and registry.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from flows.hoarding import flow as hoarding_flow
from flows.hoarding.flow import hoarding
from flows.mental_health.administrative import administrative_admission
from flows.mental_health.emergency import emergency_admission
from registry import cases
from registry import hoarding as rules
from registry.db import Database
from registry.models import Case, Referral, Resident
from registry.timeline import case_timeline
from tests.driving import Script, coordinator_of, read_case, run_once, token_of
from yeongye import steering
from yeongye.cli import app
from yeongye.mailcapture import MailCapture, read_captured

runner = CliRunner()


# --- the rules ------------------------------------------------------------------------------------


def test_guardianship_needs_both_a_lack_of_capacity_and_no_one_to_decide() -> None:
    """A guardian who exists decides; a resident who can decide signs: only both together open it."""
    assert rules.consequences((rules.LACKS_CAPACITY, rules.NO_GUARDIAN)).guardianship
    assert not rules.consequences((rules.LACKS_CAPACITY,)).guardianship
    assert not rules.consequences((rules.NO_GUARDIAN,)).guardianship
    assert rules.consequences((rules.CRISIS_EMERGENCY,)).admission == "emergency-admission"
    assert rules.consequences((rules.CRISIS_ADMINISTRATIVE,)).admission == "administrative-admission"
    assert rules.consequences(()) == rules.Consequences(admission="", guardianship=False, police_at_cleaning=False)
    assert rules.consequences((rules.SAFETY_RISK,)).police_at_cleaning


def test_findings_name_what_is_wrong_and_change_nothing(
    prefect_server: None, registry: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two crises at once, a case of another intervention, an unknown case: each refused by name."""
    hoarding.to_deployment(name="hoarding").apply()
    launched = steering.launch(
        registry, intervention="hoarding", complex_code="F", resident_ref="R-F-002", by=coordinator_of(registry, "F")
    )
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-f"))

    both = runner.invoke(app, ["hoarding", "findings", launched.case_ref, "--emergency", "--administrative"])
    unknown = runner.invoke(app, ["hoarding", "findings", "C-2026-9999", "--lacks-capacity"])
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-a"))
    elsewhere = runner.invoke(app, ["hoarding", "findings", launched.case_ref, "--lacks-capacity"])

    assert [r.exit_code for r in (both, unknown, elsewhere)] == [2, 2, 2]
    said = [" ".join(r.output.split()) for r in (both, unknown, elsewhere)]  # rich wraps lines
    assert "--emergency/--administrative" in said[0]
    assert "C-2026-9999" in said[1]
    assert "hoarding findings" in said[2]
    with registry.transaction() as session:
        assert rules.findings_of(session, cases.find_case(session, launched.case_ref)) == ()

    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-f"))
    recorded = runner.invoke(app, ["hoarding", "findings", launched.case_ref, "--lacks-capacity", "--no-guardian"])
    later = runner.invoke(app, ["hoarding", "findings", launched.case_ref, "--has-guardian"])
    assert (recorded.exit_code, later.exit_code) == (0, 0), recorded.output + later.output
    assert "의사결정능력이 부족함" in recorded.output and "후견인도 보호의무자도 없음" in recorded.output
    with registry.transaction() as session:
        assert rules.findings_of(session, cases.find_case(session, launched.case_ref)) == (rules.LACKS_CAPACITY,)


# --- the flow -------------------------------------------------------------------------------------


def _deploy() -> None:
    for flow in (hoarding, administrative_admission, emergency_admission):
        flow.to_deployment(name=flow.name).apply()


def _launch(db: Database, resident: str, findings: tuple[str, ...]) -> tuple[Script, str]:
    """A hoarding case whose coordinator records ``findings`` at the home-visit decision (CLI, logged in)."""
    complex_code = resident[2]
    launched = steering.launch(
        db,
        intervention="hoarding",
        complex_code=complex_code,
        resident_ref=resident,
        by=coordinator_of(db, complex_code),
    )

    def decide(wait: steering.Wait) -> tuple[bool, str]:
        if wait.key.startswith("decision-home-visit"):
            result = runner.invoke(app, ["hoarding", "findings", launched.case_ref, *findings])
            assert result.exit_code == 0, result.output
        return True, ""

    return Script(db, launched.case_ref, on_decision=decide), launched.flow_run_id


def _run_until(script: Script, flow_run_id: str, kind: str, step: str = "") -> steering.Wait:
    """Run the case, answering as the script does, until it waits for ``kind`` (in ``step``)."""
    for _ in range(40):
        flow_run = run_once(flow_run_id)
        assert flow_run.state is not None and not flow_run.state.is_final(), flow_run.state
        wait = steering.current_wait(script.db, script.case_ref)
        if wait.kind == kind and (not step or wait.step == step):
            return wait
        script.answer(wait)
    raise AssertionError(f"no {kind} wait: {script.waits[-5:]}")


def _referrals(db: Database, case_ref: str, step: str) -> list[tuple[str, str, str]]:
    with db.transaction() as session:
        case = cases.find_case(session, case_ref)
        rows = session.scalars(select(Referral).where(Referral.case_id == case.id, Referral.step == step))
        return [(r.agency_id, r.service, r.status) for r in rows]


def _emails(mail: MailCapture, case_ref: str, step: str) -> list[tuple[str, str]]:
    """(recipient, body) of each email of the case's ``step``."""
    found = []
    for message in read_captured(mail.mail_dir):
        if message.headers["X-Yeongye-Key"].startswith(f"{case_ref}:{step}:"):
            found.extend((to, message.text + message.html) for to in message.to)
    return found


def test_no_guardian_and_lacking_capacity_opens_guardianship_before_consent(
    prefect_server: None, registry: Database, mail: MailCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The study's F-complex case: a resident with dementia, no one to decide. The coordinator's
    finding (not a signature) sends the case to the 노인보호전문기관 and the district office, who
    learn who the resident is under 민법 §9①; consent is asked only once they report back."""
    _deploy()
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-f"))
    script, flow_run_id = _launch(registry, "R-F-001", ("--lacks-capacity", "--no-guardian"))

    _run_until(script, flow_run_id, "consent")

    assert sorted(_referrals(registry, script.case_ref, "guardianship")) == [
        ("gaon-district-1", "guardianship-petition", "completed"),
        ("gaon-elderprot-1", "guardianship", "completed"),
    ]
    assert script.waits.index("decision-home-visit-1") < script.waits.index(
        next(k for k in script.waits if k.startswith("answer-guardianship"))
    )
    with registry.transaction() as session:
        case = cases.find_case(session, script.case_ref)
        assert cases.disclosure_basis(session, case, "elder-protection") == hoarding_flow.GUARDIANSHIP_BASIS
        resident = session.get(Resident, "R-F-001")
        assert resident is not None
        name = resident.name
    emails = _emails(mail, script.case_ref, "guardianship")
    assert sorted(to for to, _body in emails) == ["district1@example.org", "elderprot1@example.org"]
    assert all(name in body for _to, body in emails)  # they must know whom to help: the basis allows it


@pytest.mark.parametrize("crisis", ["administrative", "emergency"])
def test_a_crisis_at_the_home_visit_opens_a_linked_admission_case(
    prefect_server: None, registry: Database, mail: MailCapture, monkeypatch: pytest.MonkeyPatch, crisis: str
) -> None:
    """The home visit finds the resident in danger: an admission case of the right kind is opened for
    them, started, and linked both ways; the hoarding case goes on to consent. For an
    administrative admission the police are asked to escort it (study table 2), by case reference
    only; with a safety risk they are at the cleaning too."""
    _deploy()
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-a"))
    script, flow_run_id = _launch(registry, "R-A-002", (f"--{crisis}", "--safety-risk"))

    _run_until(script, flow_run_id, "consent")

    intervention = f"{crisis}-admission"
    with registry.transaction() as session:
        admission = session.scalar(
            select(Case).where(Case.resident_ref == "R-A-002", Case.intervention == intervention)
        )
        assert admission is not None
        assert (admission.status, admission.opened_by) == ("open", f"case:{script.case_ref}")
        assert admission.flow_run_id
        linked = case_timeline(session, cases.find_case(session, script.case_ref))["linked_cases"]
        back = case_timeline(session, admission)["linked_cases"]
        resident = session.get(Resident, "R-A-002")
        assert resident is not None
        name = resident.name
    assert linked == {"opened_by": None, "opened": [{"case": admission.ref, "intervention": intervention}]}
    assert back == {"opened_by": script.case_ref, "opened": []}
    shown = runner.invoke(app, ["case", script.case_ref])
    assert shown.exit_code == 0, shown.output
    assert f"{admission.ref} {intervention}" in " ".join(shown.output.split())

    escorts = _emails(mail, script.case_ref, "admission-escort")
    if crisis == "administrative":
        assert [to for to, _body in escorts] == ["police1@example.org"]
        # No basis lets the police learn the person or the health service from this case's email.
        assert name not in escorts[0][1] and "입원 동행" not in escorts[0][1]
        script.answer(steering.current_wait(registry, script.case_ref))  # the resident consents
        _run_until(script, flow_run_id, "answer", "cleaning")
        assert {(agency, service) for agency, service, _ in _referrals(registry, script.case_ref, "cleaning")} == {
            ("gaon-cleancoop-1", "cleaning"),
            ("gaon-police-1", "safety-support"),
        }
    else:
        assert escorts == []  # the emergency admission's own officer escorts (§50②)
    assert read_case(registry, script.case_ref).status == "open"
