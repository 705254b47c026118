"""A hoarding case driven from intake to closure against a real Prefect server and SMTP server."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from sqlalchemy import select

from registry.db import Database
from registry.models import Case, OutboxMessage, Referral, Resident
from tests.driving import Script, assert_not_in_prefect, coordinator_of, deploy_hoarding, drive, run_once
from yeongye import steering
from yeongye.mailcapture import MailCapture, read_captured

EXPECTED_AGENCY_HANDOFFS = {
    # step -> agencies that must each get exactly one email for it
    "assessment": {"cc1@example.org", "mgmt1@example.org"},
    "conference": {
        "district1@example.org",
        "cc1@example.org",
        "mgmt1@example.org",
        "mhwc1@example.org",
        "phc1@example.org",
        "wc1@example.org",
    },
    "budget": {"district1@example.org"},
    "cleaning": {"cleancoop1@example.org"},
    "repairs": {"lh1@example.org", "probsupport1@example.org"},
    "mental-health": {"mhwc1@example.org", "phc1@example.org"},
    "aftercare": {"wc1@example.org", "family1@example.org"},
    "follow-up-1m": {"mgmt1@example.org"},
    "follow-up-3m": {"mgmt1@example.org"},
    "follow-up-6m": {"mgmt1@example.org"},
}


def _emails_by_step(mail_dir: Path) -> Counter[tuple[str, str]]:
    """(step, recipient) -> number of messages captured; the step is part of the outbox key."""
    counts: Counter[tuple[str, str]] = Counter()
    for message in read_captured(mail_dir):
        _case, step, _recipient = message.headers["X-Yeongye-Key"].split(":")
        for to in message.to:
            counts[(step, to)] += 1
    return counts


def _task_states(flow_run_id: str) -> Counter[str]:
    states: Counter[str] = Counter()
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                limit=200,
                offset=sum(states.values()),
            )
            states.update(run.state.name for run in page if run.state)
            if len(page) < 200:
                return states


@pytest.mark.slow
def test_full_case_reaches_closure_with_one_email_per_handoff(
    prefect_server: None, registry: Database, mail: MailCapture, results_dir: Path
) -> None:
    deploy_hoarding()
    launched = steering.launch(
        registry, intervention="hoarding", complex_code="D", resident_ref="R-D-001", by=coordinator_of(registry, "D")
    )
    final = drive(Script(registry, launched.case_ref), launched.flow_run_id)

    assert final.state is not None and final.state.is_completed()
    with registry.transaction() as session:
        case = session.scalar(select(Case).where(Case.ref == launched.case_ref))
        assert case is not None and (case.status, case.outcome) == ("closed", "remediated")
        statuses = {(r.step, r.agency_id): r.status for r in session.scalars(select(Referral))}
        outbox = session.scalars(select(OutboxMessage)).all()
        resident = session.get(Resident, "R-D-001")
        assert resident is not None
    assert set(statuses.values()) == {"completed"}
    assert {m.status for m in outbox} == {"sent"} and all(m.attempts == 1 for m in outbox)

    counts = _emails_by_step(mail.mail_dir)
    for step, recipients in EXPECTED_AGENCY_HANDOFFS.items():
        for to in recipients:
            assert counts[(step, to)] == 1, (step, to)
    assert all(n == 1 for n in counts.values()), counts
    # Nobody outside the plan was contacted: agencies of the plan, plus the coordinator and supervisor.
    planned = set().union(*EXPECTED_AGENCY_HANDOFFS.values()) | {"coord-d@example.org", "supervisor-1@example.org"}
    assert {to for _step, to in counts} == planned
    # Details go only to agencies after written consent: the assessment visit gets no name.
    first = [m for m in read_captured(mail.mail_dir) if m.headers["X-Yeongye-Key"].endswith(":assessment:gaon-cc-1")]
    cleaning = [m for m in read_captured(mail.mail_dir) if ":cleaning:" in m.headers["X-Yeongye-Key"]]
    assert resident.name not in first[0].text and resident.name in cleaning[0].text

    # Finished steps replayed from persisted results when the case resumed, and did not run again.
    states = _task_states(launched.flow_run_id)
    assert states["Cached"] > 100
    assert states["Failed"] == 0

    _assert_no_personal_data_in_prefect(resident, results_dir)


def _assert_no_personal_data_in_prefect(resident: Resident, results_dir: Path) -> None:
    """Search Prefect's own database and the result storage for the resident's name, phone, unit."""
    assert_not_in_prefect([resident.name, resident.phone, resident.unit], results_dir)


def test_consent_refused_never_contacts_the_cleaning_firm(
    prefect_server: None, registry: Database, mail: MailCapture
) -> None:
    deploy_hoarding()
    launched = steering.launch(
        registry, intervention="hoarding", complex_code="B", resident_ref="R-B-002", by=coordinator_of(registry, "B")
    )
    script = Script(registry, launched.case_ref, on_consent=lambda wait: (False, "resident"))
    final = drive(script, launched.flow_run_id)

    assert final.state is not None and final.state.is_completed()
    assert [k for k in script.waits if k.startswith("consent")] == ["consent-1", "consent-2", "consent-3"]
    assert any(k.startswith("answer-re-approach-1") for k in script.waits)
    with registry.transaction() as session:
        case = session.scalar(select(Case).where(Case.ref == launched.case_ref))
        steps = {r.step for r in session.scalars(select(Referral).where(Referral.case_id == case.id))}
    assert case is not None and case.outcome == "consent-refused-monitoring"
    assert steps == {"assessment", "re-approach-1", "re-approach-2"}
    recipients = {to for m in read_captured(mail.mail_dir) for to in m.to}
    assert not any(to.startswith("cleancoop") for to in recipients)
    assert "district1@example.org" not in recipients


@pytest.mark.slow
def test_rejection_reroutes_to_next_agency_then_asks_coordinator(
    prefect_server: None, registry: Database, mail: MailCapture
) -> None:
    """At the mental-health step: centre 1 declines, centre 2 is asked; when it declines too, the
    coordinator is asked and skips; the rest of the case goes on."""
    deploy_hoarding()
    launched = steering.launch(
        registry, intervention="hoarding", complex_code="A", resident_ref="R-A-003", by=coordinator_of(registry, "A")
    )

    def agencies(wait: steering.Wait) -> tuple[str, str, str]:
        for agency in wait.agencies:
            if agency.startswith("gaon-mhwc"):
                return agency, "rejected", "정원 초과 (no capacity)"
        return wait.agencies[0], "completed", "완료"

    script = Script(registry, launched.case_ref, on_answer=agencies)
    flow_run = run_once(launched.flow_run_id)
    while not (flow_run.state and flow_run.state.is_final()):
        wait = steering.current_wait(registry, launched.case_ref)
        if wait.kind == "reroute":
            script.waits.append(wait.key)
            steering.reroute(registry, launched.case_ref, agency_id="", reason="건너뜀", by=script.coordinator)
        else:
            script.answer(wait)
        flow_run = run_once(launched.flow_run_id)

    assert any(k.startswith("reroute-mental-health-mental-health-center") for k in script.waits)
    with registry.transaction() as session:
        rows = session.execute(
            select(Referral.agency_id, Referral.status, Referral.reason).where(Referral.step == "mental-health")
        ).all()
        case = session.scalar(select(Case).where(Case.ref == launched.case_ref))
    assert {(a, s) for a, s, _ in rows} == {
        ("gaon-mhwc-1", "rejected"),
        ("gaon-mhwc-2", "rejected"),
        ("gaon-phc-1", "completed"),
    }
    assert all(reason for _a, status, reason in rows if status == "rejected")
    assert case is not None and case.status == "closed"
    keys = Counter(m.headers["X-Yeongye-Key"] for m in read_captured(mail.mail_dir))
    assert keys[f"{launched.case_ref}:mental-health:gaon-mhwc-2"] == 1
