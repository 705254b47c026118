"""`yeongye launch` refuses bad input with a clear message, a non-zero exit and nothing written.

Every command but the installation's first registry load acts as a member of staff logged in;
these tests log in with a token (``YEONGYE_TOKEN``) or with `yeongye login`, as staff would.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect.client.orchestration import get_client
from pytest import MonkeyPatch
from sqlalchemy import func, select
from typer.testing import CliRunner

from registry.db import Database
from registry.models import AuditEntry, Case, Centre, Complex
from tests.conftest import every_backend
from tests.driving import deploy_hoarding, token_of
from yeongye.cli import app


def _counts(db: Database) -> tuple[int, int]:
    with db.transaction() as session:
        return session.scalar(select(func.count(Case.id))) or 0, session.scalar(select(func.count(AuditEntry.id))) or 0


def _flow_runs() -> int:
    with get_client(sync_client=True) as client:
        return len(client.read_flow_runs(limit=200))


@every_backend
def test_launch_rejects_bad_input_and_writes_nothing(
    prefect_server: None, registry: Database, monkeypatch: MonkeyPatch
) -> None:
    deploy_hoarding()
    runner = CliRunner()
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-c"))  # complex C's coordinator, centre gaon-1
    ok = runner.invoke(app, ["launch", "hoarding", "--complex", "C", "--resident", "R-C-001"])
    assert ok.exit_code == 0, ok.output
    assert "C-20" in ok.output and "/runs/flow-run/" in ok.output
    before, runs_before = _counts(registry), _flow_runs()

    cases = {
        ("--complex", "C", "--resident", "R-C-999"): "--resident",
        ("--complex", "C", "--resident", "R-A-001"): "--resident",
        ("--complex", "C", "--resident", "R-C-001"): "진행 중인",
        # Complex D is centre gaon-2's: its cases are not gaon-1's staff's to open.
        ("--complex", "D", "--resident", "R-D-002"): "센터 소관이 아닙니다",
    }
    for args, expected in cases.items():
        result = runner.invoke(app, ["launch", "hoarding", *args])
        assert result.exit_code == 2, result.output
        assert expected in result.output, result.output
    bad_type = runner.invoke(app, ["launch", "cleaning", "--complex", "C", "--resident", "R-C-002"])
    assert bad_type.exit_code == 2 and "intervention" in bad_type.output

    assert _counts(registry) == before
    assert _flow_runs() == runs_before


@every_backend
def test_launch_names_the_option_of_an_unknown_complex(
    prefect_server: None, registry: Database, monkeypatch: MonkeyPatch
) -> None:
    """A mistyped complex is named as the option it came from, as any bad input is; nothing is written."""
    deploy_hoarding()
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-c"))
    before, runs_before = _counts(registry), _flow_runs()
    result = CliRunner().invoke(app, ["launch", "hoarding", "--complex", "Q", "--resident", "R-C-002"])
    assert result.exit_code == 2, result.output
    assert _counts(registry) == before and _flow_runs() == runs_before
    assert "--complex" in result.output, result.output


def test_launch_writes_nothing_when_prefect_refuses(
    prefect_server: None, registry: Database, monkeypatch: MonkeyPatch
) -> None:
    """No deployment of that name: the case opened inside the transaction is rolled back."""
    with get_client(sync_client=True) as client:
        for deployment in client.read_deployments():
            client.delete_deployment(deployment.id)
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-c"))
    before = _counts(registry)
    result = CliRunner().invoke(app, ["launch", "hoarding", "--complex", "C", "--resident", "R-C-003"])
    assert result.exit_code != 0
    assert _counts(registry) == before and before[0] == 0  # no case, nothing in the audit trail


def test_registry_load_rejects_a_bad_file_and_writes_nothing(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setenv("YEONGYE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("YEONGYE_DATABASE_URL", f"sqlite:///{tmp_path / 'r.db'}")
    bad = tmp_path / "district.json"
    bad.write_text(
        json.dumps(
            {
                "centres": [{"code": "gaon-1", "name": "가온구 제1 주거복지센터", "kind": "district"}],
                "complexes": [
                    {
                        "code": "A",
                        "name": "A단지",
                        "district": "가온구",
                        "households": 10,
                        "operator": "LH",
                        "centre_code": "gaon-1",
                    }
                ],
                "residents": [
                    {
                        "ref": "R-A-1",
                        "complex_code": "Z",
                        "name": "가나",
                        "phone": "010-0000-0001",
                        "building": "101동",
                        "unit": "101호",
                        "birth_year": 1950,
                        "lives_alone": True,
                    }
                ],
            },
            ensure_ascii=False,
            indent=2,
        ),
        encoding="utf-8",
    )
    # A new registry, no account yet: the person installing it loads it, without a log-in.
    result = CliRunner().invoke(app, ["registry", "load", str(bad)])
    assert result.exit_code == 2
    assert "residents[0].complex_code" in result.output and "line" in result.output
    assert result.output.count("- ") == 1, result.output  # that one problem only
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    with db.transaction() as session:
        assert session.scalar(select(func.count(Complex.code))) == 0
        assert session.scalar(select(func.count(Centre.code))) == 0


def test_without_the_stack_commands_refuse_rather_than_open_an_empty_registry(
    tmp_path: Path, monkeypatch: MonkeyPatch
) -> None:
    """The embedded registry lives in `yeongye up`'s PostgreSQL: with the stack down, say so."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv("YEONGYE_DATA_DIR", str(data_dir))
    monkeypatch.delenv("YEONGYE_DATABASE_URL", raising=False)
    # What a killed `yeongye up` leaves behind: a stack file naming a process that is gone.
    (data_dir / "stack.json").write_text(json.dumps({"database_url": "postgresql://nowhere/yeongye", "pid": 2**22 + 7}))
    runner = CliRunner()
    for command in (["cases"], ["case", "C-2026-0001"], ["registry", "load-sample"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "yeongye up" in result.output and "실행 중이 아닙니다" in result.output
    assert not (data_dir / "yeongye.db").exists()

    # Configured without PostgreSQL, the SQLite file is the registry, stack or not.
    monkeypatch.setenv("YEONGYE_EMBEDDED_POSTGRES", "false")
    assert runner.invoke(app, ["registry", "load-sample"]).exit_code == 0
    logged_in = runner.invoke(app, ["login", "--user", "coord-a", "--password-stdin"], input="demo\n")
    assert logged_in.exit_code == 0, logged_in.output
    listed = runner.invoke(app, ["cases", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.output) == []
    assert (data_dir / "yeongye.db").exists()
