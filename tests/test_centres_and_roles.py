"""Each district centre works on its own cases, the central centre reads every case and changes none,
and a supervisor's decision is a supervisor's: every command tried, at the command line, as the
person logged in.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from registry import access, accounts
from registry.calendar import SEOUL
from registry.db import Database
from registry.models import Act, Approval, AuditEntry, Case, Note, OutboxMessage, Staff, StaffSession
from tests.conftest import every_backend
from tests.driving import Script, deploy_hoarding, read_case, run_once, token_of
from yeongye import steering
from yeongye.cli import app

runner = CliRunner()
NOT_YOURS = "센터 소관이 아닙니다"
READ_ONLY = "중앙센터는 열람만"


def as_(db: Database, monkeypatch: pytest.MonkeyPatch, staff_id: str) -> None:
    """Run the next commands as ``staff_id``, logged in with the sample's demo password."""
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(db, staff_id))


def yeongye(*args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=stdin)


def refused(result: Result, why: str) -> None:
    assert result.exit_code == 2, result.output
    assert why in " ".join(result.output.split()), result.output


def _snapshot(db: Database, case_ref: str) -> tuple[Any, ...]:
    """What any act on the case would change: the case, its signed inputs, notes, mail and decisions."""
    with db.transaction() as session:
        case = session.scalar(select(Case).where(Case.ref == case_ref))
        assert case is not None
        return (
            case.status,
            case.stage,
            session.scalar(select(func.count(Case.id))),
            session.scalar(select(func.count(Act.id))),
            session.scalar(select(func.count(Note.id))),
            session.scalar(select(func.count(OutboxMessage.id))),
            tuple(session.scalars(select(Approval.status).where(Approval.case_id == case.id).order_by(Approval.id))),
        )


def _pause_key(flow_run_id: str) -> str | None:
    state = run_once(flow_run_id).state
    assert state is not None and state.is_paused(), state
    return state.state_details.pause_key


def test_a_centre_works_on_its_own_cases_and_the_central_centre_only_reads(
    prefect_server: None, registry: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    deploy_hoarding()
    as_(registry, monkeypatch, "coord-d")  # 가온구 제2 주거복지센터 (complexes D–F)
    launched = yeongye("launch", "hoarding", "--complex", "D", "--resident", "R-D-001")
    assert launched.exit_code == 0, launched.output
    theirs = read_case(registry, "C-" + launched.output.split("C-", 1)[1].split()[0])
    assert theirs.opened_by == "coord-d"
    assert theirs.flow_run_id is not None and _pause_key(theirs.flow_run_id) == "answer-assessment-1"
    as_(registry, monkeypatch, "coord-a")  # 가온구 제1 주거복지센터 (complexes A–C)
    ours = yeongye("launch", "hoarding", "--complex", "A", "--resident", "R-A-001")
    assert ours.exit_code == 0, ours.output
    before = _snapshot(registry, theirs.ref)

    # A coordinator of the other centre: the case is not listed, not shown, and takes nothing from them.
    listed = yeongye("cases", "--json")
    assert listed.exit_code == 0 and theirs.ref not in {c["case"] for c in json.loads(listed.output)}
    refused(yeongye("case", theirs.ref), NOT_YOURS)
    refused(yeongye("respond", theirs.ref, "--agency", "gaon-cc-1", "--status", "completed"), NOT_YOURS)
    refused(yeongye("approve", theirs.ref), NOT_YOURS)
    refused(yeongye("reroute", theirs.ref, "--skip", "--reason", "없음"), NOT_YOURS)
    refused(
        yeongye("conference", "schedule", theirs.ref, "--date", "2027-01-05", "--time", "14:00", "--place", "회의실"),
        NOT_YOURS,
    )
    refused(yeongye("conference", "minutes", theirs.ref, "--not-proceeding", "--reason", "x"), NOT_YOURS)
    refused(yeongye("jobs", "facts", theirs.ref, "--basic-pension"), NOT_YOURS)
    refused(yeongye("launch", "hoarding", "--complex", "D", "--resident", "R-D-002"), NOT_YOURS)
    refused(yeongye("residents", "--complex", "D"), NOT_YOURS)
    refused(yeongye("audit", "--resident", "R-D-001"), NOT_YOURS)
    shown = yeongye("residents", "--json")
    assert shown.exit_code == 0 and {r["complex"] for r in json.loads(shown.output)} == {"A", "B", "C"}
    with registry.transaction() as session:
        message = session.scalar(select(OutboxMessage.id).where(OutboxMessage.case_id == theirs.id))
    assert message is not None
    refused(yeongye("outbox", "retry", str(message)), NOT_YOURS)
    assert _snapshot(registry, theirs.ref) == before
    assert steering.current_wait(registry, theirs.ref).key == "answer-assessment-1"

    # The central centre reads every centre's cases and residents, and changes nothing.
    as_(registry, monkeypatch, "central-1")
    listed = yeongye("cases", "--json")
    assert {theirs.ref, "C-" + ours.output.split("C-", 1)[1].split()[0]} <= {
        c["case"] for c in json.loads(listed.output)
    }
    assert yeongye("case", theirs.ref).exit_code == 0
    shown = yeongye("residents", "--json")
    assert {r["complex"] for r in json.loads(shown.output)} == {"A", "B", "C", "D", "E", "F"}
    sweep = tmp_path / "signals.csv"
    sweep.write_text("resident_ref,complex_code,arrears_months\nR-D-001,D,4\n", encoding="utf-8")
    for command in (
        ("respond", theirs.ref, "--agency", "gaon-cc-1", "--status", "completed"),
        ("approve", theirs.ref),
        ("reroute", theirs.ref, "--skip", "--reason", "없음"),
        ("launch", "hoarding", "--complex", "D", "--resident", "R-D-002"),
        ("jobs", "facts", theirs.ref, "--basic-pension"),
        ("outbox", "retry", str(message)),
        ("sweep", str(sweep)),
        ("deadlines",),
    ):
        refused(yeongye(*command), READ_ONLY)
    refused(yeongye("holiday", "2027-01-04", "임시공휴일"), "중앙센터 센터 관리자만")
    refused(yeongye("registry", "load-sample"), "센터 관리자만")
    refused(yeongye("doctor", "--repair"), "센터 관리자만")
    assert _snapshot(registry, theirs.ref) == before

    # Their own coordinator answers, and the answer is recorded in her name.
    as_(registry, monkeypatch, "coord-d")
    answered = yeongye("respond", theirs.ref, "--agency", "gaon-cc-1", "--status", "completed", "--reason", "방문함")
    assert answered.exit_code == 0, answered.output
    assert theirs.flow_run_id is not None and _pause_key(theirs.flow_run_id) == "answer-assessment-2"
    with registry.transaction() as session:
        actors = set(
            session.scalars(
                select(AuditEntry.actor).where(
                    AuditEntry.case_id == theirs.id, AuditEntry.action == "referral-answered"
                )
            )
        )
        reads = set(
            session.execute(
                select(AuditEntry.actor, AuditEntry.resident_ref).where(AuditEntry.action == "read")
            ).tuples()
        )
    assert actors == {"coord-d"}
    # Every read of a resident names who read it: the central reader saw both centres' residents.
    assert {("central-1", "R-D-001"), ("central-1", "R-A-001"), ("coord-a", "R-A-001")} <= reads
    assert not any(actor == "coord-a" and resident.startswith("R-D") for actor, resident in reads)


def test_a_coordinator_cannot_take_the_supervisors_decision(
    prefect_server: None, registry: Database, mail: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget is the supervisor's: refused to the case's coordinator and to the other centre's
    supervisor, taken by the centre's own supervisor, in her name."""
    deploy_hoarding()
    as_(registry, monkeypatch, "coord-e")
    launched = yeongye("launch", "hoarding", "--complex", "E", "--resident", "R-E-001")
    assert launched.exit_code == 0, launched.output
    case = read_case(registry, "C-" + launched.output.split("C-", 1)[1].split()[0])
    assert case.flow_run_id is not None and case.supervisor_id == "supervisor-1"
    script = Script(registry, case.ref)
    for _ in range(40):
        run_once(case.flow_run_id)
        wait = steering.current_wait(registry, case.ref)
        if wait.key.startswith("decision-budget"):
            break
        script.answer(wait)
    assert wait.key.startswith("decision-budget"), wait.key
    before = _snapshot(registry, case.ref)

    refused(yeongye("approve", case.ref), "수퍼바이저")
    as_(registry, monkeypatch, "supervisor-2")  # the supervisor of the other centre
    refused(yeongye("approve", case.ref), NOT_YOURS)
    assert _snapshot(registry, case.ref) == before

    as_(registry, monkeypatch, "supervisor-1")
    approved = yeongye("approve", case.ref)
    assert approved.exit_code == 0, approved.output
    run_once(case.flow_run_id)
    with registry.transaction() as session:
        budget = session.scalar(select(Approval).where(Approval.case_id == case.id, Approval.kind == "budget"))
        assert budget is not None and (budget.status, budget.decided_by) == ("approved", "supervisor-1")


def test_a_wrong_id_costs_what_a_wrong_password_costs() -> None:
    """The hash a wrong id is checked against has the parameters every stored password gets, so
    verifying it takes as long: a log-in's time does not tell whether the id exists."""
    assert not PasswordHasher().check_needs_rehash(accounts.DUMMY_HASH)
    assert PasswordHasher().check_needs_rehash(accounts.DUMMY_HASH.replace("t=3", "t=2"))


def test_log_in_log_out_and_passwords(registry: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Log-in with the demo password, a token file only its owner reads, a refused password that
    does not say whether the id exists, log-out ending the session, and an admin setting a password."""
    monkeypatch.delenv("YEONGYE_TOKEN", raising=False)
    data_dir = Path(os.environ["YEONGYE_DATA_DIR"])
    refused(yeongye("cases"), "로그인하지 않았습니다")
    for user, password in (("coord-a", "wrong"), ("nobody", "demo")):
        refused(
            runner.invoke(app, ["login", "--user", user, "--password-stdin"], input=f"{password}\n"), "맞지 않습니다"
        )
    logged_in = runner.invoke(app, ["login", "--user", "coord-a", "--password-stdin"], input="demo\n")
    assert logged_in.exit_code == 0, logged_in.output
    session_file = data_dir / "session"
    assert session_file.stat().st_mode & 0o777 == 0o600
    who = yeongye("whoami", "--json")
    assert json.loads(who.output) == {"staff": "coord-a", "role": "coordinator", "centre": "gaon-1"}
    with registry.transaction() as session:
        stored = session.scalars(select(StaffSession.token_hash)).all()
        assert session_file.read_text().strip() not in stored  # only its hash is kept
        failed = session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "login-failed")).all()
        assert [d["user"] for d in failed] == ["coord-a", "nobody"]

    # A member of staff may not set another's password; their centre's admin may, and it ends their sessions.
    refused(runner.invoke(app, ["staff", "set-password", "coord-b", "--password-stdin"], input="x" * 12), "관리자만")
    assert yeongye("logout").exit_code == 0 and not session_file.exists()
    refused(yeongye("cases"), "로그인하지 않았습니다")
    as_(registry, monkeypatch, "coord-b")
    as_b = os.environ["YEONGYE_TOKEN"]
    as_(registry, monkeypatch, "admin-2")  # the other centre's admin
    refused(
        runner.invoke(app, ["staff", "set-password", "coord-b", "--password-stdin"], input="n" * 12), "센터가 아닙니다"
    )
    as_(registry, monkeypatch, "admin-1")
    short = runner.invoke(app, ["staff", "set-password", "coord-b", "--password-stdin"], input="short\n")
    refused(short, "10자 이상")
    done = runner.invoke(app, ["staff", "set-password", "coord-b", "--password-stdin"], input="새 비밀번호 2026\n")
    assert done.exit_code == 0, done.output
    monkeypatch.setenv("YEONGYE_TOKEN", as_b)
    refused(yeongye("cases"), "만료")  # coord-b's session ended with the new password
    again = runner.invoke(
        app, ["login", "--user", "coord-b", "--password-stdin", "--print-token"], input="새 비밀번호 2026\n"
    )
    assert again.exit_code == 0 and again.output.startswith("yg1_"), again.output
    with registry.transaction() as session:
        coord_b = session.get(Staff, "coord-b")
        assert coord_b is not None and coord_b.password_hash and coord_b.password_hash.startswith("$argon2id$")


def test_only_a_centre_admin_loads_the_registry_and_only_their_own_centre(
    registry: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    own = tmp_path / "own.json"
    own.write_text(json.dumps({"residents": [_resident("R-A-900", "A")]}, ensure_ascii=False), encoding="utf-8")
    theirs = tmp_path / "theirs.json"
    theirs.write_text(
        json.dumps(
            {
                "residents": [_resident("R-A-901", "A"), _resident("R-D-901", "D")],
                "agencies": [],
                "centres": [{"code": "gaon-1", "name": "x", "kind": "district"}],
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    monkeypatch.delenv("YEONGYE_TOKEN", raising=False)
    refused(yeongye("registry", "load", str(own)), "로그인하지 않았습니다")  # accounts exist: no setup load
    as_(registry, monkeypatch, "coord-a")
    refused(yeongye("registry", "load", str(own)), "센터 관리자만")
    as_(registry, monkeypatch, "admin-1")
    result = yeongye("registry", "load", str(theirs))
    assert result.exit_code == 2
    assert "residents[1]: 'R-D-901' is not centre 'gaon-1'" in result.output, result.output
    assert "centres: only the central centre's admin loads centres" in result.output, result.output
    assert yeongye("registry", "load", str(own)).exit_code == 0
    with registry.transaction() as session:
        loaded = session.scalars(
            select(AuditEntry.actor).where(AuditEntry.action == "registry-load").order_by(AuditEntry.id.desc())
        ).first()
    assert loaded == "admin-1"


def _resident(ref: str, complex_code: str) -> dict[str, Any]:
    return {
        "ref": ref,
        "complex_code": complex_code,
        "name": "가상 입주민",
        "phone": "010-0000-0000",
        "building": "101동",
        "unit": "101호",
        "birth_year": 1950,
    }


@every_backend
def test_a_session_lasts_its_hours_and_no_longer(registry: Database) -> None:
    """A log-in lasts ``session_hours`` from the moment it was made, on either database (SQLite keeps
    no time zone: a Seoul time read back as UTC would add nine hours)."""
    now = dt.datetime.now(SEOUL)
    with registry.transaction() as session:
        token = accounts.log_in(session, "coord-a", accounts.DEMO_PASSWORD, now=now, hours=8)
    assert token is not None
    with registry.transaction() as session:
        assert accounts.authenticate(session, token, now=now + dt.timedelta(hours=7, minutes=59)).staff_id == "coord-a"
        with pytest.raises(access.AccessDenied, match="만료"):
            accounts.authenticate(session, token, now=now + dt.timedelta(hours=8, minutes=1))
