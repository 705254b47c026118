"""Nothing a person wrote, and nothing about the resident, reaches Prefect: a marker test.

Every free-text input of whole cases carries a unique marker (reasons of a rejection, a decline,
a consent, decisions, the conference's place and outcome, completed answers), and so do the
resident's registry fields; one handoff task fails on a real database error whose parameters
carry a marker. Then every table of Prefect's database (flow-run inputs, logs, artifacts, states),
and every result file, is searched: no marker may be there, while each one people wrote must be
in the registry, so the test fails if the markers never went anywhere. The database error is kept
in the registry's incidents, its parameters hidden there too (``registry.db``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler, APILogWorker
from prefect.settings import (
    PREFECT_LOGGING_TO_API_ENABLED,
    PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW,
    temporary_settings,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from flows.mental_health.emergency import emergency_admission
from registry import calendar, cases
from registry.db import Database
from registry.mental_health import SceneEntry
from registry.models import Approval, Case, Conference, Incident, Note, Referral, Resident
from tasks.retry import HandoffFailed
from tests.conftest import every_backend_with_prefect
from tests.driving import (
    Script,
    assert_not_in_prefect,
    conference_slot,
    coordinator_of,
    deploy_hoarding,
    drive,
    read_run,
    run_once,
)
from yeongye import steering
from yeongye.mailcapture import MailCapture

MARK = "QZXW7"


def mark(what: str) -> str:
    return f"{MARK}-{what}"


@pytest.fixture
def prefect_logs() -> Iterator[None]:
    """Logs go to Prefect's API in this test (the suite keeps them off), ``yeongye`` events included,
    as the worker sends them (PREFECT_LOGGING_EXTRA_LOGGERS=yeongye)."""
    handler = APILogHandler()
    ours = logging.getLogger("yeongye")
    with temporary_settings({PREFECT_LOGGING_TO_API_ENABLED: True, PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}):
        ours.addHandler(handler)
        try:
            yield
        finally:
            APILogWorker.drain_all()
            ours.removeHandler(handler)


@dataclass
class Marked(Script):
    """Answers every wait with a marker in each free-text field.

    The first community centres decline the assessment and the coordinator skips the need; consent
    is refused once, then given; the supervisor refuses the first closure.
    """

    rejected_steps: tuple[str, ...] = ("assessment",)
    refused_consent: bool = False
    declined_closure: bool = False

    def answer(self, wait: steering.Wait) -> None:
        self.waits.append(wait.key)
        db, ref = self.db, self.case_ref
        if wait.kind == "answer":
            agency = wait.agencies[0]
            with db.transaction() as session:
                referral = cases.find_referral(session, cases.find_case(session, ref), wait.step, agency)
                assert referral is not None
                outcomes = list(referral.outcomes)
                agency_type = referral.agency.type_code
            if wait.step in self.rejected_steps and agency_type == "community-center":
                reason = mark("reject") + " 홍길동(010-1234-5678, 102동 902호) 조현병 치료중"
                steering.respond(db, ref, agency_id=agency, status="rejected", reason=reason, by=self.coordinator)
            else:
                outcome = outcomes[0] if outcomes else ""
                steering.respond(
                    db,
                    ref,
                    agency_id=agency,
                    status="completed",
                    reason=mark("completed"),
                    outcome=outcome,
                    by=self.coordinator,
                )
        elif wait.kind == "reroute":
            steering.reroute(db, ref, agency_id="", reason=mark("reroute"), by=self.coordinator)
        elif wait.kind == "consent":
            if not self.refused_consent:
                self.refused_consent = True
                steering.approve(db, ref, approved=False, reason=mark("consent"), by=self.coordinator)
            else:
                steering.approve(db, ref, approved=True, reason=mark("consent-given"), by=self.coordinator)
        elif wait.kind == "decision":
            if "closure" in wait.key and not self.declined_closure:
                self.declined_closure = True
                steering.approve(db, ref, approved=False, reason=mark("decline"), by=self.supervisor)
            else:
                steering.approve(db, ref, approved=True, reason=mark("decision"), by=self.supervisor)
        elif wait.kind == "schedule":
            date, time_of_day, _place = conference_slot(db)
            place = mark("place") + " 입주민 자택 102동 902호 (the resident's home)"
            steering.schedule_conference(db, ref, date=date, time_of_day=time_of_day, place=place, by=self.coordinator)
        elif wait.kind == "minutes":
            steering.record_minutes(
                db,
                ref,
                proceed=True,
                roles=[],
                reason=mark("minutes"),
                minutes=mark("minutes-file") + " 회의록",
                by=self.coordinator,
            )
        elif wait.kind == "scene":
            # The emergency admission's on-scene record: what happened minutes ago, with a remark.
            ago = {
                n: f"{calendar.SystemClock().now() - dt.timedelta(minutes=n):%Y-%m-%d %H:%M}" for n in (40, 30, 25, 10)
            }
            scene = SceneEntry(
                requested_at=ago[40],
                doctor_consented_at=ago[30],
                police_agency_id="gaon-police-1",
                police_consented_at=ago[25],
                escort="police",
                hospital_agency_id="gaon-hospital-1",
                admitted_at=ago[10],
            )
            steering.record_emergency_scene(db, ref, entry=scene, reason=mark("scene"), by=self.coordinator)
        else:
            raise AssertionError(f"unexpected wait {wait.key}")


def _mark_resident(db: Database, ref: str) -> list[str]:
    """Put markers in the resident's personal fields; returns them."""
    values = {
        "name": mark(f"name-{ref}"),
        "phone": f"010-{MARK}-{ref[-1]}",
        "building": f"{MARK}{ref[-1]}동",
        "unit": f"{MARK}{ref[-1]}호",
    }
    with db.transaction() as session:
        resident = session.get(Resident, ref)
        assert resident is not None
        for field, value in values.items():
            setattr(resident, field, value)
    return list(values.values())


def _launch(db: Database, flow: Flow[..., Any], complex_code: str, resident_ref: str) -> steering.Launched:
    flow.to_deployment(name=flow.name).apply()
    return steering.launch(
        db,
        intervention=flow.name,
        complex_code=complex_code,
        resident_ref=resident_ref,
        by=coordinator_of(db, complex_code),
    )


def _failing_set_stage(session: Session, case: Case, stage: str) -> None:
    """A real database error whose parameters carry a marker: a note for a case that does not exist."""
    session.add(Note(case_id=-1, kind="reason", text=mark("db-error"), written_by="flow"))
    session.flush()


@every_backend_with_prefect
def test_no_marker_reaches_prefect(
    prefect_database: str,
    registry: Database,
    mail: MailCapture,
    results_dir: Path,
    prefect_logs: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resident_markers = _mark_resident(registry, "R-D-001") + _mark_resident(registry, "R-A-001")
    resident_markers += _mark_resident(registry, "R-D-002")

    # A whole hoarding case, every free text marked.
    deploy_hoarding()
    launched = steering.launch(
        registry, intervention="hoarding", complex_code="D", resident_ref="R-D-001", by=coordinator_of(registry, "D")
    )
    script = Marked(registry, launched.case_ref)
    final = drive(script, launched.flow_run_id, max_waits=120)
    assert final.state is not None and final.state.is_completed(), final.state
    assert any(key.startswith("reroute-") for key in script.waits)
    assert any(key.startswith("consent-2") or key == "consent-2" for key in script.waits), script.waits

    # An emergency admission, its decisions and reports marked too.
    emergency = _launch(registry, emergency_admission, "A", "R-A-001")
    people = Marked(registry, emergency.case_ref, rejected_steps=())
    final = drive(people, emergency.flow_run_id, flow=emergency_admission, max_waits=60)
    assert final.state is not None and final.state.is_completed(), final.state

    # A handoff task fails on a real database error that has a marker among its parameters.
    monkeypatch.setattr(cases, "set_stage", _failing_set_stage)
    failing = steering.launch(
        registry, intervention="hoarding", complex_code="D", resident_ref="R-D-002", by=coordinator_of(registry, "D")
    )
    with pytest.raises(HandoffFailed) as raised:
        run_once(failing.flow_run_id)
    assert raised.value.__context__ is None and raised.value.__cause__ is None and not raised.value.transient
    failed = read_run(failing.flow_run_id)
    assert failed.state is not None and failed.state.is_failed(), failed.state
    message = failed.state.message or ""
    assert "IntegrityError" in message and "incident-" in message and MARK not in message
    monkeypatch.undo()

    APILogWorker.drain_all()
    markers = [
        mark(what)
        for what in (
            "reject",
            "completed",
            "reroute",
            "consent",
            "consent-given",
            "decision",
            "decline",
            "place",
            "minutes",
            "minutes-file",
            "scene",
        )
    ]
    # The markers did reach the registry: what people wrote; and the error, without its parameters.
    with registry.transaction() as session:
        written = " ".join(
            [n.text for n in session.scalars(select(Note))]
            + [r.reason or "" for r in session.scalars(select(Referral))]
            + [a.reason or "" for a in session.scalars(select(Approval))]
            + [c.place for c in session.scalars(select(Conference))]
            + [c.minutes or "" for c in session.scalars(select(Conference))]
            + [i.detail for i in session.scalars(select(Incident))]
        )
        incidents = session.scalars(select(Incident)).all()
    for marker in markers:
        assert marker in written, marker
    assert [i.task for i in incidents] == ["enter-stage"] and "IntegrityError" in incidents[0].error_class
    assert "INSERT INTO note" in incidents[0].detail and "parameters hidden" in incidents[0].detail
    assert MARK not in incidents[0].detail
    assert f"incident-{incidents[0].id}" in message
    with registry.transaction() as session:
        referrals = {r.reason for r in session.scalars(select(Referral)) if r.status == "rejected"}
    assert any(reason and reason.startswith(mark("reject")) for reason in referrals)

    # The scan below reads the flow runs' own events too, not only Prefect's.
    logged: list[Any] = []
    with get_client(sync_client=True) as client:
        while page := client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[launched.flow_run_id])), offset=len(logged)
        ):
            logged += page
    assert any(log.name == "yeongye" and "answer-recorded" in log.message for log in logged)

    # And none of them, nor the residents' details, reached Prefect: inputs, logs, artifacts, states, results.
    assert read_run(failing.flow_run_id).state is not None
    assert_not_in_prefect(
        [MARK, *markers, mark("db-error"), *resident_markers, "홍길동", "010-1234-5678", "조현병"],
        results_dir,
        must_scan=("flow_run_input", "log", "artifact", "task_run_state"),
        database_url=prefect_database,
    )
