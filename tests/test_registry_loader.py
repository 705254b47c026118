"""The registry loader: the sample district loads, reloads idempotently, and bad files change nothing;
a district centre's admin loads their own centre's rows only."""

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
from registry.loader import SAMPLE_PATH, LoadReport, RegistryLoadError, load_registry, load_sample
from registry.models import Agency, AuditEntry, Centre, Complex, Resident, Staff

PG_URL = os.environ.get("YEONGYE_TEST_DATABASE_URL")
HOUSEHOLDS = {"A": 1998, "B": 1654, "C": 1191, "D": 1460, "E": 2359, "F": 1983}
CENTRE_OF = {"A": "gaon-1", "B": "gaon-1", "C": "gaon-1", "D": "gaon-2", "E": "gaon-2", "F": "gaon-2"}
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

    assert report == LoadReport(agency_types=43, centres=3, complexes=6, agencies=49, staff=12, residents=18)
    with db.transaction() as session:
        agencies = session.scalars(select(Agency)).all()
        assert {a.type_code for a in agencies} == AGENCY_TYPE_CODES
        for code in TWO_PER_TYPE:
            assert sorted(a.rank for a in agencies if a.type_code == code) == [1, 2]
        assert all(a.email.endswith("@example.org") for a in agencies)
        assert {c.code: c.households for c in session.scalars(select(Complex))} == HOUSEHOLDS
        assert {c.code: c.centre_code for c in session.scalars(select(Complex))} == CENTRE_OF
        assert {c.code: c.kind for c in session.scalars(select(Centre))} == {
            "central": "central",
            "gaon-1": "district",
            "gaon-2": "district",
        }
        coordinators = session.scalars(select(Staff).where(Staff.role == "coordinator")).all()
        assert sorted(s.complex_code or "" for s in coordinators) == sorted(HOUSEHOLDS)
        assert all(s.centre_code == CENTRE_OF[s.complex_code or ""] for s in coordinators)
        # Each district centre has its supervisor and admin; the central centre reads, and administers.
        others = session.execute(select(Staff.id, Staff.role, Staff.centre_code).where(Staff.role != "coordinator"))
        assert sorted(tuple(row) for row in others) == [
            ("admin-1", "centre-admin", "gaon-1"),
            ("admin-2", "centre-admin", "gaon-2"),
            ("admin-central", "centre-admin", "central"),
            ("central-1", "central", "central"),
            ("supervisor-1", "supervisor", "gaon-2"),
            ("supervisor-2", "supervisor", "gaon-1"),
        ]
        # A registry file gives no one a password: only the sample's own loader does (below).
        assert session.scalar(select(func.count()).where(Staff.password_hash.is_not(None))) == 0
        audit = session.scalars(select(AuditEntry)).one()
        assert audit.action == "registry-load"
        assert audit.detail == {
            "agency_types": 43,
            "centres": 3,
            "complexes": 6,
            "agencies": 49,
            "staff": 12,
            "residents": 18,
        }


def test_the_sample_staff_log_in_with_the_demo_password(sqlite_db: Database) -> None:
    load_sample(sqlite_db, actor="setup:tester")
    load_sample(sqlite_db, actor="setup:tester")  # a password already given is kept, not given again
    with sqlite_db.transaction() as session:
        assert session.scalar(select(func.count()).where(Staff.password_hash.is_not(None))) == 12
        given = session.execute(
            select(AuditEntry.actor, AuditEntry.detail).where(AuditEntry.action == "password-set")
        ).all()
    assert [tuple(row) for row in given] == [("setup:tester", {"demo": True, "accounts": 12})]


def test_loading_twice_creates_no_duplicates(sqlite_db: Database) -> None:
    first = load_registry(sqlite_db, SAMPLE_PATH)
    second = load_registry(sqlite_db, SAMPLE_PATH)

    assert first == second
    with sqlite_db.transaction() as session:
        counts = [_count(session, m) for m in (Centre, Agency, Complex, Staff, Resident)]
        assert counts == [first.centres, first.agencies, first.complexes, first.staff, first.residents]


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
        "centres": [{"code": "gaon-1", "name": "가온구 제1 주거복지센터", "kind": "district"}],
        "complexes": [
            {
                "code": "A",
                "name": "가온 A단지",
                "district": "가온구",
                "households": 10,
                "operator": "LH",
                "centre_code": "gaon-1",
            }
        ],
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
        assert [_count(session, m) for m in (Centre, Agency, Resident, Complex)] == [0, 0, 0, 0]


def test_malformed_json_names_line_and_column(sqlite_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"complexes": [\n  {"code": "A",}\n]}\n', encoding="utf-8")

    with pytest.raises(RegistryLoadError, match=r"malformed JSON at line 2, column 16"):
        load_registry(sqlite_db, path)


def test_staff_fit_their_centre(sqlite_db: Database) -> None:
    """A complex belongs to a district centre; a coordinator works at a complex of their own centre,
    and the central role at the central centre."""
    load_registry(sqlite_db, SAMPLE_PATH)
    coordinator = {"name": "시험", "role": "coordinator", "email": "t@example.org"}
    doc = {
        "complexes": [
            {
                "code": "G",
                "name": "가온 G단지",
                "district": "가온구",
                "households": 10,
                "operator": "LH",
                "centre_code": "central",
            }
        ],
        "staff": [
            {**coordinator, "id": "coord-x", "complex_code": "A", "centre_code": "gaon-2"},
            {**coordinator, "id": "central-x", "role": "central", "centre_code": "gaon-1"},
            {**coordinator, "id": "coord-y", "complex_code": "A", "centre_code": "gaon-9"},
        ],
    }
    with pytest.raises(RegistryLoadError) as caught:
        load_registry(sqlite_db, doc)
    assert caught.value.problems == [
        "complexes[0].centre_code: a complex belongs to a district centre, not 'central'",
        "staff[0].complex_code: complex 'A' is centre 'gaon-1''s",
        "staff[1].role: a central works at a central centre",
        "staff[2].centre_code: unknown centre 'gaon-9'",
    ]
    with sqlite_db.transaction() as session:
        assert session.get(Complex, "G") is None and session.get(Staff, "coord-x") is None


def test_a_district_admin_loads_only_their_centres_rows(sqlite_db: Database) -> None:
    load_registry(sqlite_db, SAMPLE_PATH)
    sample = json.loads(SAMPLE_PATH.read_text(encoding="utf-8"))
    resident = {r["ref"]: r for r in sample["residents"]}
    # Centre gaon-2's admin: agencies are the central centre's, and R-A-001 lives at gaon-1's complex A.
    doc = {
        "agencies": sample["agencies"][:1],
        "residents": [{**resident["R-A-001"], "phone": "010-9999-0001"}, {**resident["R-D-001"], "unit": "602호"}],
    }
    with pytest.raises(RegistryLoadError) as caught:
        load_registry(sqlite_db, doc, actor="admin-2", centre="gaon-2")
    assert caught.value.problems == [
        "agencies: only the central centre's admin loads agencies",
        "residents[0]: 'R-A-001' is not centre 'gaon-2''s",
    ]
    # Their own centre's resident alone loads, in their name.
    report = load_registry(sqlite_db, {"residents": doc["residents"][1:]}, actor="admin-2", centre="gaon-2")
    assert report.residents == 1
    with sqlite_db.transaction() as session:
        assert session.get(Resident, "R-A-001").phone == resident["R-A-001"]["phone"]  # type: ignore[union-attr]
        assert session.get(Resident, "R-D-001").unit == "602호"  # type: ignore[union-attr]
        updated = session.execute(
            select(AuditEntry.actor, AuditEntry.resident_ref).where(AuditEntry.action == "resident-updated")
        ).all()
    assert [tuple(row) for row in updated] == [("admin-2", "R-D-001")]
