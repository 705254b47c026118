"""The audit trail as PIPA access records need it: the database refuses to change it, a row changed
behind its back is found, and `yeongye audit --resident` shows who read or decided what, when and why."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from alembic import command
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from registry import audit, cases
from registry.calendar import SEOUL
from registry.db import Database, alembic_config
from registry.loader import SAMPLE_PATH, load_registry
from registry.models import AuditEntry, HolidayOverride
from tests.conftest import every_backend
from tests.driving import token_of
from yeongye.cli import app

runner = CliRunner()
RESIDENT = "R-D-001"
NAME = "남궁가온"  # R-D-001's name in the sample district


Cli = Callable[..., Any]


@pytest.fixture
def cli(registry: Database, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli(staff, *args)`` runs ``yeongye *args`` logged in as ``staff`` (one log-in each), or
    with no log-in when ``staff`` is None."""
    tokens: dict[str, str] = {}

    def run(staff: str | None, *args: str) -> Any:
        if staff is None:
            monkeypatch.delenv("YEONGYE_TOKEN", raising=False)
        else:
            if staff not in tokens:
                tokens[staff] = token_of(registry, staff)
            monkeypatch.setenv("YEONGYE_TOKEN", tokens[staff])
        return runner.invoke(app, list(args))

    return run


def _rows(db: Database) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count(AuditEntry.id))) or 0


def _drop_update_trigger(db: Database) -> None:
    """What someone with a SQL prompt could do: drop the guard, then edit the trail."""
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP TRIGGER audit_no_change ON audit"))
        else:
            conn.execute(text("DROP TRIGGER audit_no_update"))
            conn.execute(text("DROP TRIGGER audit_no_delete"))


def _open_case(db: Database) -> str:
    with db.transaction() as session:
        return cases.open_case(
            session,
            intervention="hoarding",
            complex_code="D",
            resident_ref=RESIDENT,
            opened_at=dt.datetime.now(SEOUL),
            by="coord-d",
        ).ref


@every_backend
def test_database_refuses_to_update_or_delete_the_trail(registry: Database) -> None:
    before = _rows(registry)
    assert before >= 1  # the sample's registry-load
    for statement in ("UPDATE audit SET actor = 'someone-else'", "DELETE FROM audit"):
        with pytest.raises(DBAPIError, match="append-only"):
            with registry.engine.begin() as conn:
                conn.execute(text(statement))
    with pytest.raises(DBAPIError, match="append-only"):
        with registry.engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_head"))
    assert _rows(registry) == before
    with registry.transaction() as session:
        assert audit.verify(session).ok


@every_backend
def test_a_row_altered_behind_the_databases_back_is_found(registry: Database, cli: Cli) -> None:
    assert cli("coord-d", "residents", "--complex", "D").exit_code == 0
    # The centre's admin checks the chain.
    ok = cli("admin-2", "audit", "--verify")
    assert ok.exit_code == 0, ok.output
    assert "정상 (audit chain intact)" in ok.output
    with registry.transaction() as session:
        victim = session.scalar(
            select(AuditEntry.id).where(AuditEntry.resident_ref == "R-D-002", AuditEntry.action == "read")
        )
    assert victim is not None

    _drop_update_trigger(registry)
    with registry.engine.begin() as conn:  # pretend somebody else read R-D-002's data
        conn.execute(text("UPDATE audit SET actor = 'coord-a' WHERE id = :id"), {"id": victim})

    with registry.transaction() as session:
        verdict = audit.verify(session)
    assert not verdict.ok and verdict.bad_id == victim
    result = cli("admin-2", "audit", "--verify")
    assert result.exit_code == 1
    assert "변조 (audit trail tampered)" in result.output and f"#{victim}" in result.output
    as_json = json.loads(cli("admin-2", "audit", "--verify", "--json").stdout)
    assert as_json["ok"] is False and as_json["bad_row"] == victim


@every_backend
def test_rows_removed_from_the_middle_or_the_end_are_found(registry: Database, cli: Cli) -> None:
    assert cli("central-1", "whoami").exit_code == 0  # the central centre, logged in, checks the chain below
    assert cli("coord-d", "residents", "--complex", "D").exit_code == 0
    with registry.transaction() as session:
        ids = list(session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)))
    _drop_update_trigger(registry)
    with registry.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit WHERE id = :id"), {"id": ids[-1]})
    with registry.transaction() as session:
        verdict = audit.verify(session)
    assert not verdict.ok and "head" in verdict.problem
    with registry.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit WHERE id = :id"), {"id": ids[1]})
    with registry.transaction() as session:
        verdict = audit.verify(session)
    assert verdict.bad_id == ids[2] and "removed or inserted" in verdict.problem
    assert cli("central-1", "audit", "--verify").exit_code == 1


@every_backend
def test_audit_lists_who_read_decided_and_disclosed_when_and_why(registry: Database, cli: Cli) -> None:
    started = dt.datetime.now(SEOUL) - dt.timedelta(seconds=1)
    shown = cli("coord-d", "residents", "--complex", "D")
    assert shown.exit_code == 0, shown.output
    assert NAME in shown.output
    ref = _open_case(registry)
    with registry.transaction() as session:  # a supervisor's decision, as `yeongye approve` records it
        case = cases.find_case(session, ref)
        approval = cases.request_approval(
            session, case, key="budget", kind="budget", approver_id="supervisor-1", due_date=dt.date(2030, 1, 1)
        )
        cases.decide(
            session, case, approval, approved=False, reason="예산 초과 (over budget)", by="supervisor-1", at=started
        )
        # What tasks.referrals records when it emails an agency the resident's details.
        cases.audit(
            session,
            case,
            "coord-d",
            "disclosure",
            agency="gaon-cc-1",
            fields=["name", "phone"],
            basis="written-consent",
        )
    again = cli("supervisor-1", "residents", "--complex", "D", "--json", "--purpose", "consent-check")
    assert again.exit_code == 0, again.output

    listed = cli("supervisor-1", "audit", "--resident", RESIDENT, "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert all(row["resident"] == RESIDENT for row in rows)
    reads = [(r["actor"], r["purpose"]) for r in rows if r["action"] == "read"]
    assert reads == [("coord-d", "case-work"), ("supervisor-1", "consent-check")]
    decision = next(r for r in rows if r["action"] == "approval-decided")
    assert decision["actor"] == "supervisor-1" and decision["case"] == ref
    assert "예산 초과" in decision["basis"] and "rejected" in decision["what"]
    disclosure = next(r for r in rows if r["action"] == "disclosure")
    assert disclosure["actor"] == "coord-d" and "written-consent" in disclosure["basis"]
    assert "gaon-cc-1" in disclosure["what"] and "010-" not in json.dumps(disclosure, ensure_ascii=False)
    for row in rows:
        at = dt.datetime.fromisoformat(row["at"])
        assert at.utcoffset() == dt.timedelta(hours=9) and started <= at <= dt.datetime.now(SEOUL)

    table = cli("supervisor-1", "audit", "--resident", RESIDENT)
    assert table.exit_code == 0, table.output
    assert "열람·제공·결정 기록" in table.output and "개인정보 열람" in table.output
    # Looking at the trail is itself a read, and R-D-002's reads are not R-D-001's business.
    rows = json.loads(cli("supervisor-1", "audit", "--resident", RESIDENT, "--json").stdout)
    assert [r["purpose"] for r in rows if r["action"] == "read"][-2:] == ["audit-review", "audit-review"]
    with registry.transaction() as session:
        assert audit.verify(session).ok


@every_backend
def test_reads_without_a_named_reader_are_refused(
    registry: Database, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("coord-a", "whoami").exit_code == 0  # logged in, at centre gaon-1: R-D-001 is gaon-2's
    before = _rows(registry)
    for args in (("residents",), ("residents", "--json"), ("audit", "--resident", RESIDENT)):
        refused = cli(None, *args)
        assert refused.exit_code == 2, refused.output
        assert "yeongye login" in refused.output and NAME not in refused.output
    monkeypatch.setenv("YEONGYE_TOKEN", "yg1_nobody")  # a token that opens no session
    unknown = runner.invoke(app, ["residents"])
    assert unknown.exit_code == 2 and "yeongye login" in unknown.output and NAME not in unknown.output
    # Staff of another centre are refused R-D-001's details and the trail about R-D-001.
    for args in (("residents", "--complex", "D"), ("audit", "--resident", RESIDENT)):
        foreign = cli("coord-a", *args)
        assert foreign.exit_code == 2 and "coord-a" in foreign.output and NAME not in foreign.output, foreign.output
    assert _rows(registry) == before


@every_backend
def test_registry_load_and_holidays_record_who_changed_what(registry: Database, cli: Cli) -> None:
    sample = json.loads(SAMPLE_PATH.read_text(encoding="utf-8"))
    resident = next(r for r in sample["residents"] if r["ref"] == RESIDENT)
    # R-D-001's centre's admin corrects a resident's details, as `yeongye registry load` does it.
    changes = {"residents": [{**resident, "phone": "010-9999-0000", "unit": "602호"}]}
    load_registry(registry, changes, actor="admin-2", centre="gaon-2")
    load_registry(registry, SAMPLE_PATH)  # nothing else changes: only R-D-001 is put back
    with registry.transaction() as session:
        changed = session.execute(
            select(AuditEntry.actor, AuditEntry.resident_ref, AuditEntry.detail)
            .where(AuditEntry.action == "resident-updated")
            .order_by(AuditEntry.id)
        ).all()
    assert [tuple(row) for row in changed] == [
        ("admin-2", RESIDENT, {"fields": ["phone", "unit"]}),
        ("loader", RESIDENT, {"fields": ["phone", "unit"]}),
    ]

    # Holidays move every centre's deadlines: a district centre's staff may not set one.
    refused = cli("supervisor-1", "holiday", "2026-12-24", "임시공휴일")
    assert refused.exit_code == 2, refused.output
    result = cli("admin-central", "holiday", "2026-12-24", "임시공휴일")
    assert result.exit_code == 0, result.output
    with registry.transaction() as session:
        assert session.get(HolidayOverride, dt.date(2026, 12, 24)) is not None
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "holiday-override")).one()
    assert entry.actor == "admin-central"
    assert entry.detail == {"day": "2026-12-24", "name": "임시공휴일", "holiday": True, "previous": None}


@every_backend
def test_concurrent_appends_keep_one_chain(registry: Database) -> None:
    """Writers racing each other chain onto the head one at a time: the chain never forks."""
    errors: list[BaseException] = []

    def write(actor: str) -> None:
        try:
            for n in range(15):
                with registry.transaction() as session:
                    audit.record_read(session, actor=actor, resident_ref=RESIDENT, purpose="case-work", what=str(n))
                    audit.record(session, actor=actor, action="note", n=n)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    before = _rows(registry)
    threads = [threading.Thread(target=write, args=(f"coord-{c}",)) for c in "abc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with registry.transaction() as session:
        verdict = audit.verify(session)
    assert verdict.ok, verdict.problem
    assert verdict.rows == before + 3 * 15 * 2


@every_backend
def test_migration_chains_rows_written_before_it(registry_url: str) -> None:
    command.upgrade(alembic_config(registry_url), "0011")
    db = Database(registry_url)
    try:
        load_registry_0011 = [
            "INSERT INTO audit (at, case_id, actor, action, detail) VALUES (:at, NULL, 'loader', 'registry-load', :d)",
            "INSERT INTO audit (at, case_id, actor, action, detail) VALUES (:at, NULL, 'flow', 'x', :d)",
        ]
        with db.engine.begin() as conn:
            for n, statement in enumerate(load_registry_0011):
                conn.execute(text(statement), {"at": dt.datetime.now(dt.UTC), "d": json.dumps({"n": n, "k": "한"})})
        db.migrate()
        with db.transaction() as session:
            audit.record(session, actor="coord-d", action="after")
        with db.transaction() as session:
            verdict = audit.verify(session)
        assert verdict.ok and verdict.rows == 3
        with pytest.raises(DBAPIError, match="append-only"):
            with db.engine.begin() as conn:
                conn.execute(text("UPDATE audit SET actor = 'x'"))
    finally:
        db.dispose()
