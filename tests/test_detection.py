"""The detection sweep: reading the management office's file, the rules, dedup, counts, CLI and flow."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from sqlalchemy import func, select
from typer.testing import CliRunner

from flows.detection.flow import detection_sweep
from registry import cases, detection
from registry.calendar import SEOUL
from registry.db import Database
from registry.models import Case, RiskFlag, RiskSignal, SweepRun
from tests.conftest import every_backend
from tests.driving import token_of
from yeongye.cli import app

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=SEOUL)
HEADER = (
    "resident_ref,complex_code,fee_arrears_months,rent_arrears_months,days_without_contact,"
    "power_cut,water_cut,gas_cut,odour_pest_complaints,lives_alone,birth_year"
)
KOREAN_HEADER = "입주민번호,단지,관리비체납개월,임대료체납개월,무연락일수,단전,단수,단가스,악취해충민원,독거,출생연도"


def write(path: Path, lines: list[str], encoding: str = "utf-8", header: str = HEADER) -> Path:
    path.write_bytes(("\r\n".join([header, *lines]) + "\r\n").encode(encoding))
    return path


def flags(db: Database, sweep_id: int) -> dict[str, set[str]]:
    with db.transaction() as session:
        rows = session.execute(select(RiskFlag.resident_ref, RiskFlag.flag).where(RiskFlag.sweep_id == sweep_id))
        found: dict[str, set[str]] = {}
        for ref, flag in rows:
            found.setdefault(ref, set()).add(flag)
        return found


def counts(db: Database) -> tuple[int, ...]:
    with db.transaction() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(m)) for m in (SweepRun, RiskSignal, RiskFlag, Case)
        )


def open_outreach(db: Database) -> list[str]:
    with db.transaction() as session:
        query = select(Case.resident_ref).where(Case.intervention == "outreach", Case.status == "open")
        return sorted(session.scalars(query))


def test_rules_with_their_boundaries(registry: Database, tmp_path: Path) -> None:
    # Sample births: R-A-001 1941 alone, R-A-002 1948 not alone, R-A-003 1955 alone, R-B-001 1962 alone.
    path = write(
        tmp_path / "signals.csv",
        [
            "R-A-001,A,2,2,13,0,0,0,0,N,1962",  # 2 months, 13 days, 64 (born 1962): nothing
            "R-A-002,A,3,0,14,,,,,,",  # 3 months fee, 14 days: arrears + no-contact
            "R-A-003,A,0,3,0,0,Y,0,0,,",  # rent 3 months, water cut; 71 and alone: isolated senior
            "R-B-001,B,0,0,0,1,0,0,1,y,1961",  # power cut, odour; alone and 65 (born 1961)
            "R-B-002,B,0,0,0,0,0,예,0,아니오,",  # gas cut
        ],
    )
    report = detection.sweep(registry, path, now=NOW)
    assert flags(registry, report.sweep_id) == {
        "R-A-002": {"arrears-3m", "no-contact"},
        "R-A-003": {"arrears-3m", "utility-cutoff", "isolated-senior"},
        "R-B-001": {"utility-cutoff", "odour-pests", "isolated-senior"},
        "R-B-002": {"utility-cutoff"},
    }
    assert sorted(report.new_case_refs) == report.new_case_refs and len(report.new_case_refs) == 4
    assert open_outreach(registry) == ["R-A-002", "R-A-003", "R-B-001", "R-B-002"]
    # A senior living alone with no other signal is counted, but opens no case.
    again = detection.sweep(registry, write(tmp_path / "s2.csv", ["R-A-001,A,0,0,0,0,0,0,0,Y,1941"]), now=NOW)
    assert flags(registry, again.sweep_id) == {"R-A-001": {"isolated-senior"}}
    assert again.new_case_refs == []


def test_counts_per_complex(registry: Database, tmp_path: Path) -> None:
    path = write(
        tmp_path / "signals.csv",
        ["R-A-001,A,4,0,30,0,0,0,0,,", "R-A-002,A,0,0,0,0,0,0,0,,", "R-C-001,C,0,0,0,1,1,1,0,N,"],
    )
    report = detection.sweep(registry, path, now=NOW)
    a, c = report.complexes["A"], report.complexes["C"]
    assert (a.households, a.flagged, a.new_cases) == (2, 1, 1)
    assert a.by_rule == {"arrears-3m": 1, "utility-cutoff": 0, "no-contact": 1, "odour-pests": 0, "isolated-senior": 1}
    assert (c.households, c.flagged, c.new_cases, c.by_rule["utility-cutoff"]) == (1, 1, 1, 1)
    table = report.table()
    assert [row["단지 complex"] for row in table] == ["A", "C", "합계 total"]
    assert table[-1]["세대 households"] == 3 and table[-1]["신규 사례 new cases"] == 2


def test_cp949_file_with_korean_header_imports(registry: Database, tmp_path: Path) -> None:
    path = write(tmp_path / "관리사무소.csv", ["R-D-002,D,3,0,0,0,0,0,0,예,"], "cp949", KOREAN_HEADER)
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    report = detection.sweep(registry, path, now=NOW)
    assert report.encoding == "cp949"
    assert flags(registry, report.sweep_id) == {"R-D-002": {"arrears-3m", "isolated-senior"}}


def test_utf8_with_bom_imports(registry: Database, tmp_path: Path) -> None:
    path = write(tmp_path / "signals.csv", ["R-E-002,E,0,0,20,0,0,0,0,,"], "utf-8-sig", KOREAN_HEADER)
    report = detection.sweep(registry, path, now=NOW)
    assert report.encoding == "utf-8"
    assert flags(registry, report.sweep_id) == {"R-E-002": {"no-contact"}}


def test_malformed_file_is_rejected_whole_with_line_numbers(registry: Database, tmp_path: Path) -> None:
    before = counts(registry)
    path = write(
        tmp_path / "bad.csv",
        [
            "R-A-001,A,3,0,0,0,0,0,0,,",  # fine
            "R-A-002,A,two,0,0,0,0,0,0,,",
            "R-X-999,A,0,0,0,0,0,0,0,,",
            "R-A-003,B,0,0,0,0,0,0,0,,",
            "R-B-001,B,0,-1,0,0,0,0,0,,",
            "R-A-001,A,0,0,0,0,0,0,0,,",
            "R-B-002,B,0,0,0,maybe,0,0,0,,",
            "R-B-003,B,0,0",
        ],
    )
    with pytest.raises(detection.SweepFileError) as caught:
        detection.sweep(registry, path, now=NOW)
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == [f"line {n}" for n in range(3, 10)]
    assert "fee_arrears_months" in problems[0] and "not an integer" in problems[0]
    assert "unknown resident" in problems[1]
    assert "complex_code" in problems[2] and "lives in complex A" in problems[2]
    assert "rent_arrears_months" in problems[3] and "negative" in problems[3]
    assert "duplicate resident" in problems[4] and "line 2" in problems[4]
    assert "power_cut" in problems[5]
    assert counts(registry) == before
    bad_header = write(tmp_path / "h.csv", ["R-A-001,A,0"], header="resident_ref,단지,arrears")
    with pytest.raises(detection.SweepFileError) as caught:
        detection.sweep(registry, bad_header, now=NOW)
    assert caught.value.problems == ["line 1: arrears: 알 수 없는 열 (unknown column)"]
    assert counts(registry) == before


@every_backend
def test_two_sweeps_do_not_open_the_same_case_twice(registry: Database, tmp_path: Path) -> None:
    with registry.transaction() as session:  # R-C-001 already has an open case of another kind
        cases.open_case(
            session, intervention="hoarding", complex_code="C", resident_ref="R-C-001", opened_at=NOW, by="coord-c"
        )
    rows = ["R-A-001,A,3,0,0,0,0,0,0,,", "R-B-001,B,0,0,0,0,0,0,2,,", "R-C-001,C,5,5,60,1,0,0,0,,"]
    first = detection.sweep(registry, write(tmp_path / "1.csv", rows), now=NOW)
    assert (len(first.new_case_refs), first.totals().new_flags) == (2, 7)
    second = detection.sweep(registry, write(tmp_path / "2.csv", rows), now=NOW)
    assert (second.new_case_refs, second.totals().new_flags) == ([], 0)
    # A new rule for a resident whose outreach case is still open flags, but opens nothing.
    rows = ["R-A-001,A,3,0,0,1,0,0,0,,", rows[1], "R-B-002,B,0,0,15,0,0,0,0,,"]
    third = detection.sweep(registry, write(tmp_path / "3.csv", rows), now=NOW)
    assert flags(registry, third.sweep_id)["R-A-001"] == {"arrears-3m", "utility-cutoff", "isolated-senior"}
    assert len(third.new_case_refs) == 1
    assert open_outreach(registry) == ["R-A-001", "R-B-001", "R-B-002"]
    with registry.transaction() as session:
        opened = session.execute(select(Case.id, Case.ref).where(Case.intervention == "outreach")).all()
        # The sweep takes its case ids as the database would: a case opened afterwards gets a later one.
        later = cases.open_case(
            session, intervention="hoarding", complex_code="A", resident_ref="R-A-002", opened_at=NOW, by="coord-a"
        )
    assert len(opened) == 3 and all(ref == f"C-2026-{id_:04d}" for id_, ref in opened)
    assert later.id > max(id_ for id_, _ in opened) and later.ref == f"C-2026-{later.id:04d}"


def test_cli_sweep_prints_the_table_and_rejects_a_bad_file(
    prefect_server: None, registry: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    # Complex A's coordinator runs it, for centre gaon-1 (complexes A–C).
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-a"))
    bad = write(
        tmp_path / "bad.csv",
        ["R-A-001,A,x,0,0,0,0,0,0,,", "R-Z-1,A,0,0,0,0,0,0,0,,", "R-D-001,D,3,0,0,0,0,0,0,,"],
    )
    result = runner.invoke(app, ["sweep", str(bad)])
    assert result.exit_code == 2
    assert "line 2: fee_arrears_months" in result.output and "line 3: resident_ref" in result.output
    # A resident of another centre's complex is not this centre's to sweep: unknown here.
    assert "line 4: resident_ref" in result.output
    assert counts(registry)[0] == 0

    good = write(tmp_path / "good.csv", ["R-A-001,A,3,0,0,0,0,0,0,,", "R-B-001,B,0,0,0,0,0,0,0,N,"])
    result = runner.invoke(app, ["sweep", str(good)])
    assert result.exit_code == 0, result.output
    assert "위기가구 발굴" in result.output and "합계" in result.output  # cells wrap at 80 columns
    assert "launch pending" in result.output  # no outreach deployment on the test server
    result = runner.invoke(app, ["sweep", str(good), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert (shown["sweep_id"], shown["new_cases"], len(shown["launch_pending"])) == (2, [], 1)
    assert [row["단지 complex"] for row in shown["complexes"]] == ["A", "B", "합계 total"]
    assert shown["complexes"][0]["관리비 또는 임대료 3개월 이상 체납 arrears-3m"] == 1
    with registry.transaction() as session:  # the case the sweep opened, in the name of who ran it
        assert session.scalars(select(Case.opened_by).where(Case.intervention == "outreach")).all() == ["coord-a"]


def test_flow_launches_outreach_runs_and_publishes_counts(
    prefect_server: None, registry: Database, tmp_path: Path
) -> None:
    path = write(tmp_path / "signals.csv", ["R-D-001,D,0,0,0,0,0,0,3,,", "R-E-002,E,0,0,0,0,0,0,0,,"])
    assert detection_sweep(str(path)) == {"sweep_id": 1, "new_cases": 1, "launched": 0, "launch_pending": 1}
    artifact = Artifact.get("detection-sweep")
    assert artifact is not None and "R-D-001" not in str(artifact.data)  # counts only
    table = json.loads(str(artifact.data))
    assert [row["단지 complex"] for row in table] == ["D", "E", "합계 total"]
    assert (table[0]["악취·해충 이웃 민원 odour-pests"], table[0]["신규 사례 new cases"]) == (1, 1)

    # With an outreach deployment (no worker needed): the pending case gets its flow run.
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("outreach")
        client.create_deployment(flow_id=flow_id, name="outreach")
    assert detection_sweep(str(path))["launched"] == 1
    with registry.transaction() as session:
        case = session.scalar(select(Case).where(Case.resident_ref == "R-D-001"))
        assert case is not None and case.flow_run_id
