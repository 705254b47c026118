#!/usr/bin/env python
"""Time the detection sweep on 250,000 households against one bare SQL query computing the same flags.

It generates a fictional district (fixed seed) of N households across complexes of ~1,000
households, writes the management office's CSV, loads the residents into a fresh registry (a
SQLite file by default, ``--database-url`` for PostgreSQL), then, in a fresh child process so
that the peak memory is the sweep's own, times:

- the sweep's import + flag step (``registry.detection.sweep``: read, decode, validate every row,
  bulk insert, flag in one INSERT … SELECT, open the outreach cases, count per complex);
- one bare SQL query over the same ``risk_signal`` rows that computes the same flags.

It prints both times, their ratio, the number of flags (which must match) and the child's peak
memory (``ru_maxrss``).

Signal density (per household, independent draws; roughly what 영구임대 complexes report):
management-fee arrears ≥ 3 months 3 % (1–2 months 7 %), rent arrears ≥ 3 months 2 %, electricity
cut 0.6 %, water 0.3 %, gas 0.4 %, no contact for ≥ 14 days 1.5 %, odour/pest complaints 0.5 %,
living alone 25 %, born 1935–2005 with 40 % aged 65+.

Usage (from the project root)::

    .venv/bin/python bench/sweep_250k.py
    .venv/bin/python bench/sweep_250k.py --database-url postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/sweep_250k.py --households 20000 --encoding cp949
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, insert, text

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from registry import detection  # noqa: E402
from registry.calendar import SEOUL  # noqa: E402
from registry.db import Database, normalise_url  # noqa: E402
from registry.models import Complex, Resident, Staff  # noqa: E402

SEED = 20261123
PER_COMPLEX = 1000
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=SEOUL)

# The same flags as registry.detection.RULES, written by hand as one query.
BARE_SQL = """
SELECT resident_ref, 'arrears-3m' FROM risk_signal
 WHERE sweep_id = :s AND (fee_arrears_months >= 3 OR rent_arrears_months >= 3)
UNION ALL SELECT resident_ref, 'utility-cutoff' FROM risk_signal
 WHERE sweep_id = :s AND (power_cut OR water_cut OR gas_cut)
UNION ALL SELECT resident_ref, 'no-contact' FROM risk_signal WHERE sweep_id = :s AND days_without_contact >= 14
UNION ALL SELECT resident_ref, 'odour-pests' FROM risk_signal WHERE sweep_id = :s AND odour_pest_complaints >= 1
UNION ALL SELECT resident_ref, 'isolated-senior' FROM risk_signal WHERE sweep_id = :s AND lives_alone AND age >= 65
"""


def arrears(rng: random.Random, three_plus: float, one_two: float) -> int:
    draw = rng.random()
    if draw < three_plus:
        return rng.randint(3, 12)
    if draw < three_plus + one_two:
        return rng.randint(1, 2)
    return 0


def generate(households: int, csv_path: Path, encoding: str) -> list[dict[str, object]]:
    """Write the CSV; return the registry's residents (ref, complex, birth year, lives alone)."""
    rng = random.Random(SEED)
    residents: list[dict[str, object]] = []
    lines = [",".join(detection.COLUMNS)]
    for n in range(households):
        complex_code = f"K{n // PER_COMPLEX:04d}"
        ref = f"R-{complex_code}-{n % PER_COMPLEX:04d}"
        senior = rng.random() < 0.40
        born = rng.randint(1935, 1961) if senior else rng.randint(1962, 2005)
        alone = rng.random() < 0.25
        residents.append(
            {
                "ref": ref,
                "complex_code": complex_code,
                "name": "가상 입주민",
                "phone": "010-0000-0000",
                "building": str(101 + n % 10),
                "unit": str(n % PER_COMPLEX),
                "birth_year": born,
                "lives_alone": alone,
            }
        )
        no_contact = rng.randint(14, 120) if rng.random() < 0.015 else rng.randint(0, 6)
        row = [
            ref,
            complex_code,
            arrears(rng, 0.03, 0.07),
            arrears(rng, 0.02, 0.05),
            no_contact,
            int(rng.random() < 0.006),
            int(rng.random() < 0.003),
            int(rng.random() < 0.004),
            rng.randint(1, 3) if rng.random() < 0.005 else 0,
            "",  # as in the registry
            "",
        ]
        lines.append(",".join(map(str, row)))
    csv_path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return residents


def load_registry(url: str, residents: list[dict[str, object]]) -> None:
    db = Database(url)
    db.migrate()
    codes = sorted({str(r["complex_code"]) for r in residents})
    with db.transaction() as session:
        session.execute(
            insert(Complex),
            [
                {"code": c, "name": f"가상 {c}단지", "district": "가온구", "households": PER_COMPLEX, "operator": "LH"}
                for c in codes
            ],
        )
        staff = [
            {
                "id": f"coord-{c.lower()}",
                "name": "주거복지사",
                "role": "coordinator",
                "email": f"{c}@example.org",
                "complex_code": c,
            }
            for c in codes
        ]
        staff.append(
            {
                "id": "supervisor-1",
                "name": "슈퍼바이저",
                "role": "supervisor",
                "email": "s@example.org",
                "complex_code": None,
            }
        )
        session.execute(insert(Staff), staff)
        session.execute(insert(Resident), residents)
    # A registry is loaded long before a sweep runs: let autovacuum's work (PostgreSQL) and the
    # planner statistics happen now rather than inside the timed sweep.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE" if db.engine.dialect.name == "postgresql" else "ANALYZE")
    db.dispose()


def measure(url: str, csv_path: Path) -> dict[str, float | int]:
    """In the child: the sweep, then the bare query, then the peak memory."""
    db = Database(url)
    started = time.perf_counter()
    report = detection.sweep(db, csv_path, now=NOW, actor="bench")
    sweep_s = time.perf_counter() - started
    with db.engine.connect() as connection:
        started = time.perf_counter()
        bare = connection.execute(text(BARE_SQL), {"s": report.sweep_id}).all()
        sql_s = time.perf_counter() - started
    totals = report.totals()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "households": totals.households,
        "flags": sum(totals.by_rule.values()),
        "bare_sql_flags": len(bare),
        "flagged_households": totals.flagged,
        "new_cases": totals.new_cases,
        "sweep_s": round(sweep_s, 3),
        "sql_s": round(sql_s, 3),
        "ratio": round(sweep_s / sql_s, 1),
        "peak_rss_mib": round(peak_kib / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--households", type=int, default=250_000)
    parser.add_argument("--database-url", help="a PostgreSQL server URL; a fresh database is created on it")
    parser.add_argument("--encoding", default="utf-8", choices=["utf-8", "utf-8-sig", "cp949"])
    parser.add_argument("--budget", type=float, default=5.0, help="seconds the sweep must stay within (exit 1)")
    parser.add_argument("--measure", nargs=2, metavar=("URL", "CSV"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], Path(args.measure[1]))))
        return 0

    with tempfile.TemporaryDirectory(prefix="yeongye-sweep-") as tmp:
        work = Path(tmp)
        csv_path = work / "signals.csv"
        started = time.perf_counter()
        residents = generate(args.households, csv_path, args.encoding)
        admin = None
        if args.database_url:
            name = f"yeongye_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(normalise_url(args.database_url), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = f"{args.database_url.rsplit('/', 1)[0]}/{name}"
        else:
            url = f"sqlite:///{work / 'registry.db'}"
        try:
            load_registry(url, residents)
            del residents
            setup_s = time.perf_counter() - started
            child = subprocess.run(
                [sys.executable, __file__, "--measure", url, str(csv_path)],
                capture_output=True,
                text=True,
                cwd=PROJECT_ROOT,
            )
            if child.returncode:
                print(child.stderr, file=sys.stderr)
                return 2
            figures = json.loads(child.stdout.strip().splitlines()[-1])
        finally:
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    backend = "postgresql" if args.database_url else "sqlite"
    print(f"backend:            {backend} ({args.encoding} file)")
    print(f"households:         {figures['households']:,} (setup {setup_s:.1f} s, not timed)")
    print(f"flags:              {figures['flags']:,} on {figures['flagged_households']:,} households")
    print(f"bare SQL flags:     {figures['bare_sql_flags']:,} (must match)")
    print(f"new outreach cases: {figures['new_cases']:,}")
    print(f"sweep:              {figures['sweep_s']:.3f} s (budget {args.budget:.1f} s)")
    print(f"bare SQL query:     {figures['sql_s']:.3f} s")
    print(f"ratio:              {figures['ratio']}× the bare query")
    print(f"peak memory:        {figures['peak_rss_mib']} MiB (sweep process, ru_maxrss)")
    print(json.dumps({"backend": backend, **figures}))
    ok = figures["flags"] == figures["bare_sql_flags"] and figures["sweep_s"] <= args.budget
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
