"""The registry loader: the sample district loads, reloads idempotently, and bad files change nothing."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, make_url, select, text
from sqlalchemy.orm import Session

from registry.catalog import AGENCY_TYPE_CODES
from registry.db import Database, normalise_url
from registry.loader import SAMPLE_PATH, LoadReport, RegistryLoadError, load_registry
from registry.models import Agency, AuditEntry, Complex, Resident, Staff

PG_URL = os.environ.get("YEONGYE_TEST_DATABASE_URL")
HOUSEHOLDS = {"A": 1998, "B": 1654, "C": 1191, "D": 1460, "E": 2359, "F": 1983}
# Types a rejected handoff can be rerouted within.
TWO_PER_TYPE = {"cleaning-coop", "mental-health-center", "welfare-center", "family-center", "community-center"}


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path}/r.db")
    db.migrate()
    yield db
    db.dispose()


@pytest.fixture
def postgres_db() -> Iterator[Database]:
    """A throwaway database on the server named by YEONGYE_TEST_DATABASE_URL, dropped afterwards."""
    if not PG_URL:
        pytest.skip("YEONGYE_TEST_DATABASE_URL not set")
    name = f"yeongye_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(make_url(normalise_url(PG_URL)).set(database=name).render_as_string(hide_password=False))
    try:
        db.migrate()
        yield db
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest) -> Database:
    database: Database = request.getfixturevalue(f"{request.param}_db")
    return database


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_sample_loads_whole_district(db: Database) -> None:
    report = load_registry(db, SAMPLE_PATH)

    assert report == LoadReport(agency_types=43, complexes=6, agencies=49, staff=7, residents=18)
    with db.transaction() as session:
        agencies = session.scalars(select(Agency)).all()
        assert {a.type_code for a in agencies} == AGENCY_TYPE_CODES
        for code in TWO_PER_TYPE:
            assert sorted(a.rank for a in agencies if a.type_code == code) == [1, 2]
        assert all(a.email.endswith("@example.org") for a in agencies)
        assert {c.code: c.households for c in session.scalars(select(Complex))} == HOUSEHOLDS
        coordinators = session.scalars(select(Staff).where(Staff.role == "coordinator")).all()
        assert sorted(s.complex_code or "" for s in coordinators) == sorted(HOUSEHOLDS)
        audit = session.scalars(select(AuditEntry)).one()
        assert audit.action == "registry-load"
        assert audit.detail == {"agency_types": 43, "complexes": 6, "agencies": 49, "staff": 7, "residents": 18}


def test_loading_twice_creates_no_duplicates(sqlite_db: Database) -> None:
    first = load_registry(sqlite_db, SAMPLE_PATH)
    second = load_registry(sqlite_db, SAMPLE_PATH)

    assert first == second
    with sqlite_db.transaction() as session:
        counts = [_count(session, m) for m in (Agency, Complex, Staff, Resident)]
        assert counts == [first.agencies, first.complexes, first.staff, first.residents]


def _line_of(text: str, needle: str, occurrence: int = 1) -> int:
    hits = [number for number, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[occurrence - 1]


def test_bad_file_is_rejected_whole(sqlite_db: Database, tmp_path: Path) -> None:
    agency = {
        "id": "gaon-x-1",
        "name": "가온시험기관",
        "type": "welfare-center",
        "district": "가온구",
        "email": "x1@example.org",
        "phone": "02-0000-9001",
        "services": ["case-conference"],
        "rank": 1,
    }
    doc = {
        "agencies": [
            agency,
            {**agency, "email": "x2@example.org"},  # same id as the first
            {**agency, "id": "gaon-x-2", "email": "no-at-sign"},
        ],
        "complexes": [{"code": "A", "name": "가온 A단지", "district": "가온구", "households": 10, "operator": "LH"}],
        "residents": [
            {
                "ref": "R-Z-001",
                "complex_code": "Z",
                "name": "가나다",
                "phone": "010-0000-9001",
                "building": "101동",
                "unit": "101호",
                "birth_year": 1950,
                "lives_alone": True,
            },
        ],
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    source = path.read_text(encoding="utf-8")

    with pytest.raises(RegistryLoadError) as caught:
        load_registry(sqlite_db, path)

    duplicate_line = _line_of(source, '"id": "gaon-x-1"', occurrence=2)
    email_line = _line_of(source, "no-at-sign")
    complex_line = _line_of(source, '"complex_code": "Z"')
    assert caught.value.problems == [
        f"agencies[1].id: duplicate id 'gaon-x-1', already at agencies[0] (line {duplicate_line})",
        f"agencies[2].email: not a valid email address: 'no-at-sign' (line {email_line})",
        f"residents[0].complex_code: unknown complex 'Z' (line {complex_line})",
    ]
    with sqlite_db.transaction() as session:
        assert [_count(session, m) for m in (Agency, Resident, Complex)] == [0, 0, 0]


def test_malformed_json_names_line_and_column(sqlite_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"complexes": [\n  {"code": "A",}\n]}\n', encoding="utf-8")

    with pytest.raises(RegistryLoadError, match=r"malformed JSON at line 2, column 16"):
        load_registry(sqlite_db, path)
