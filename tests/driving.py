"""Driving a case in tests the way people would: launch it, then answer whatever it waits for.

Flow runs execute in this process (``run_flow``) against the real Prefect server, so a whole case
takes seconds; the worker test runs them in a real worker instead.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import Pause
from prefect.flow_engine import run_flow
from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL
from sqlalchemy import create_engine, inspect, select, text

from flows.hoarding.flow import hoarding
from registry import accounts, calendar
from registry.access import Principal
from registry.db import Database, normalise_url
from registry.models import Case, Referral, Staff
from tasks.runtime import business_calendar
from yeongye import steering

CONFERENCE_PLACE = "가온종합사회복지관 3층 회의실"
DECLINED = "방문 인력 없음 (no one available)"


def signed_in(db: Database, staff_id: str) -> Principal:
    """``staff_id`` logged in with the sample's demo password, as ``yeongye login`` does it."""
    now = calendar.SystemClock().now()
    with db.transaction() as session:
        token = accounts.log_in(session, staff_id, accounts.DEMO_PASSWORD, now=now, hours=1)
    assert token is not None, f"{staff_id} cannot log in"
    with db.transaction() as session:
        return accounts.authenticate(session, token, now=now)


def coordinator_of(db: Database, complex_code: str) -> Principal:
    """The coordinator of ``complex_code`` in the sample registry, logged in (who launches its cases)."""
    with db.transaction() as session:
        staff_id = session.scalar(
            select(Staff.id).where(Staff.role == "coordinator", Staff.complex_code == complex_code).order_by(Staff.id)
        )
    assert staff_id is not None, f"no coordinator at complex {complex_code}"
    return signed_in(db, staff_id)


def token_of(db: Database, staff_id: str) -> str:
    """A session token of ``staff_id`` (demo password), for ``YEONGYE_TOKEN`` in CLI tests."""
    with db.transaction() as session:
        token = accounts.log_in(session, staff_id, accounts.DEMO_PASSWORD, now=calendar.SystemClock().now(), hours=1)
    assert token is not None, f"{staff_id} cannot log in"
    return token


def deploy_hoarding() -> UUID:
    return hoarding.to_deployment(name="hoarding").apply()  # type: ignore[return-value]


def read_run(flow_run_id: str | UUID) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(str(flow_run_id)))


def run_once(flow_run_id: str, flow: Flow[..., Any] = hoarding) -> FlowRun:
    """Execute the flow run in this process until it suspends or finishes."""
    flow_run = read_run(flow_run_id)
    try:
        run_flow(flow, flow_run=flow_run, parameters=flow_run.parameters)
    except Pause:
        pass
    return read_run(flow_run_id)


@dataclass
class Script:
    """How the people around a case answer, one callable per kind of wait; the default says yes."""

    db: Database
    case_ref: str
    on_answer: Callable[[steering.Wait], tuple[str, str, str]] | None = None
    on_decision: Callable[[steering.Wait], tuple[bool, str]] | None = None
    on_consent: Callable[[steering.Wait], tuple[bool, str]] | None = None
    # (proceed, ["AGENCY_ID=SERVICE", ...], reason); the default goes on with no extra roles.
    on_minutes: Callable[[steering.Wait], tuple[bool, list[str], str]] | None = None
    waits: list[str] = field(default_factory=list)

    @functools.cached_property
    def coordinator(self) -> Principal:
        """The case's coordinator, logged in: who records answers, consent and the conference."""
        return signed_in(self.db, read_case(self.db, self.case_ref).coordinator_id)

    @functools.cached_property
    def supervisor(self) -> Principal:
        """The case's supervisor, logged in: who takes every decision (a supervisor may take a coordinator's)."""
        return signed_in(self.db, read_case(self.db, self.case_ref).supervisor_id)

    def answer(self, wait: steering.Wait) -> None:
        self.waits.append(wait.key)
        if wait.kind == "answer":
            agency, status, reason = self.on_answer(wait) if self.on_answer else (wait.agencies[0], "completed", "완료")
            steering.respond(
                self.db, self.case_ref, agency_id=agency, status=status, reason=reason, by=self.coordinator
            )
        elif wait.kind == "consent":
            given, signer = self.on_consent(wait) if self.on_consent else (True, "resident")
            steering.approve(
                self.db,
                self.case_ref,
                approved=given,
                reason="" if given else "거부",
                signer=signer,
                by=self.coordinator,
            )
        elif wait.kind == "decision":
            approved, reason = self.on_decision(wait) if self.on_decision else (True, "")
            steering.approve(self.db, self.case_ref, approved=approved, reason=reason, by=self.supervisor)
        elif wait.kind == "schedule":
            date, time_of_day, place = conference_slot(self.db)
            steering.schedule_conference(
                self.db, self.case_ref, date=date, time_of_day=time_of_day, place=place, by=self.coordinator
            )
        elif wait.kind == "minutes":
            proceed, roles, reason = self.on_minutes(wait) if self.on_minutes else (True, [], "")
            steering.record_minutes(
                self.db,
                self.case_ref,
                proceed=proceed,
                roles=roles,
                reason=reason,
                minutes="회의록 (test minutes)",
                by=self.coordinator,
            )
        else:
            raise AssertionError(f"unexpected wait {wait.key}")


@dataclass
class Answers(Script):
    """Agencies report ``outcomes[step]``, or decline the steps in ``rejections``; the rest say done.

    ``rejections`` maps a step to the reason given, or is a set of steps declined with ``DECLINED``.
    """

    outcomes: dict[str, str] = field(default_factory=dict)
    rejections: set[str] | dict[str, str] = field(default_factory=set)

    def answer(self, wait: steering.Wait) -> None:
        if wait.kind == "answer" and (wait.step in self.rejections or wait.step in self.outcomes):
            self.waits.append(wait.key)
            agency = wait.agencies[0]
            if wait.step in self.rejections:
                reason = self.rejections[wait.step] if isinstance(self.rejections, dict) else DECLINED
                steering.respond(
                    self.db, self.case_ref, agency_id=agency, status="rejected", reason=reason, by=self.coordinator
                )
            else:
                outcome = self.outcomes[wait.step]
                steering.respond(
                    self.db,
                    self.case_ref,
                    agency_id=agency,
                    status="completed",
                    reason="완료",
                    outcome=outcome,
                    by=self.coordinator,
                )
        else:
            super().answer(wait)


def conference_slot(db: Database, business_days: int = 2) -> tuple[str, str, str]:
    """A conference time that is always valid: 14:00, some business days from today (Seoul)."""
    with db.transaction() as session:
        day = business_calendar(session).add_business_days(calendar.today(calendar.SystemClock()), business_days)
    return day.isoformat(), "14:00", CONFERENCE_PLACE


def drive(script: Script, flow_run_id: str, *, max_waits: int = 80, flow: Flow[..., Any] = hoarding) -> FlowRun:
    """Run the case in-process, answering each wait, until its flow run finishes."""
    for _ in range(max_waits):
        flow_run = run_once(flow_run_id, flow)
        if flow_run.state and flow_run.state.is_final():
            return flow_run
        script.answer(steering.current_wait(script.db, script.case_ref))
    raise AssertionError(f"case did not finish within {max_waits} waits: {script.waits[-5:]}")


def _forms(needle: str) -> list[str]:
    """``needle`` as Prefect may have stored it: as it is, and inside JSON written with \\u escapes."""
    return list(dict.fromkeys([needle, json.dumps(needle)[1:-1], json.dumps(needle, ensure_ascii=False)[1:-1]]))


def assert_not_in_prefect(
    needles: list[str], results_dir: Path, *, must_scan: tuple[str, ...] = (), database_url: str | None = None
) -> None:
    """Search Prefect's own database and the result storage: none of ``needles`` may be there.

    Every table is read (flow-run inputs, logs, artifacts, states and their messages, run names
    and parameters), on SQLite or PostgreSQL (``database_url``; default: the configured one).
    ``must_scan`` names tables that must hold rows, e.g. ``("log", "flow_run_input", "artifact")``,
    so that a search which finds nothing has searched something.
    """
    url = database_url or str(PREFECT_API_DATABASE_CONNECTION_URL.value())
    engine = create_engine(normalise_url(url.replace("+aiosqlite", "").replace("+asyncpg", "")))
    forms = {needle: _forms(needle) for needle in needles}
    try:
        with engine.connect() as connection:
            tables = inspect(connection).get_table_names()
            for table in must_scan:
                assert table in tables, f"Prefect has no table {table}"
                count = connection.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()
                assert count > 0, f"Prefect table {table} is empty: nothing was checked"
            for table in tables:
                for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                    blob = " ".join(
                        bytes(value).decode("utf-8", "replace") if isinstance(value, bytes | memoryview) else str(value)
                        for value in row
                    )
                    for needle, variants in forms.items():
                        assert not any(v in blob for v in variants), f"{needle!r} found in Prefect table {table}"
    finally:
        engine.dispose()
    stored = list(results_dir.rglob("*"))
    assert any(path.is_file() for path in stored), "result storage is empty: nothing was checked"
    for path in stored:
        if path.is_file():
            content = path.read_bytes()
            for needle, variants in forms.items():
                found = any(v.encode() in content for v in variants)
                assert not found, f"{needle!r} found in result file {path.name}"


def read_case(db: Database, ref: str) -> Case:
    with db.transaction() as session:
        case = session.scalar(select(Case).where(Case.ref == ref))
        assert case is not None
        return case


def referral_steps(db: Database, case: Case) -> dict[str, tuple[str, str, str | None]]:
    """step -> (agency, status, outcome) of the last referral in each step."""
    with db.transaction() as session:
        rows = session.scalars(select(Referral).where(Referral.case_id == case.id).order_by(Referral.id))
        return {r.step: (r.agency_id, r.status, r.outcome) for r in rows}
