"""The detection sweep (위기가구 발굴): import the management office's risk signals, flag, open outreach cases.

The central centre's first duty is finding people in blind spots. The 관리사무소 (공동주택 관리주체,
사회보장급여법 §11①7의3) and the 공공주택사업자 (LH, §11①7의2) hold the signals the law names; this
module turns their periodic export into flags and outreach cases. No Prefect imports.

The file
--------
A CSV file, UTF-8 (with or without a byte-order mark) or CP949 (what Korean Excel saves), one row
per household, with a header row. Columns, in any order (the Korean header in brackets is accepted
too)::

    resident_ref           [입주민번호]      registry reference, e.g. R-D-002                  required
    complex_code           [단지]            the complex the household lives in               required
    fee_arrears_months     [관리비체납개월]  months of management-fee (관리비) arrears        count
    rent_arrears_months    [임대료체납개월]  months of rent (임대료) arrears                  count
    days_without_contact   [무연락일수]      days since the last contact / sign of presence   count
    power_cut              [단전]            electricity cut or current-limited (전류제한)    yes/no
    water_cut              [단수]            water cut                                        yes/no
    gas_cut                [단가스]          gas cut                                          yes/no
    odour_pest_complaints  [악취해충민원]    neighbour complaints about odour or pests        count
    lives_alone            [독거]            living alone; blank = as in the registry         yes/no
    birth_year             [출생연도]        blank = as in the registry                       year

A count is a whole number ≥ 0; blank means 0. yes/no is 1/0, Y/N, yes/no, true/false, 예/아니오,
O/X; blank means no. Every row is checked, and a file with any problem is rejected whole with one
line per problem: ``line N: column: message`` (N is the file's line, the header being line 1).
Unknown resident, resident of another complex, non-integer, negative, duplicate resident, unknown
or missing column are all problems. Nothing is written for a rejected file.

The rules
---------
``RULES`` below, as data: each flag has a code, Korean and English labels, its legal basis and a
SQL predicate over the imported row. Ages are ``sweep year − birth year`` (the registry holds the
birth year only), so a resident counts as 65 from 1 January of the year they turn 65.

Dedup
-----
A sweep writes one SweepRun, one RiskSignal per household and one RiskFlag per (household, rule)
met, in one INSERT … SELECT over the rules. A flag is *new* when the same resident did not have the
same flag in the previous sweep. A resident with a new flag of a rule that ``opens_case`` gets one
outreach case, unless they already have an open case of any intervention (their coordinator
already sees them; the flag is still recorded and counted). Cases are inserted in one batch and get
no flow run here: the caller launches them after commit (``pending_outreach``), so a sweep can be
recorded even when Prefect cannot take the runs yet.
"""

from __future__ import annotations

import csv
import datetime as dt
import gc
import io
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter, methodcaller
from pathlib import Path
from typing import Any, NamedTuple, TypeGuard

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    DateTime,
    Integer,
    String,
    Table,
    and_,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from registry import audit as trail
from registry.cases import GROUP_INTERVENTIONS
from registry.db import Database
from registry.models import Case, Complex, RiskFlag, RiskSignal, Staff, SweepRun

OUTREACH = "outreach"

S = RiskSignal.__table__.c


class Rule(NamedTuple):
    code: str
    label_ko: str
    label_en: str
    basis: str
    # Does a new flag of this rule alone open an outreach case?
    opens_case: bool
    predicate: ColumnElement[bool]


# Thresholds, named so the bench's bare SQL and the docs can quote them.
ARREARS_MONTHS = 3
NO_CONTACT_DAYS = 14
SENIOR_AGE = 65

RULES: tuple[Rule, ...] = (
    Rule(
        "arrears-3m",
        "관리비 또는 임대료 3개월 이상 체납",
        "management fee or rent 3+ months in arrears",
        "사회보장급여법 §12①7(공공주택 임대료)·8(공동주택 관리비)",
        True,
        or_(S.fee_arrears_months >= ARREARS_MONTHS, S.rent_arrears_months >= ARREARS_MONTHS),
    ),
    Rule(
        "utility-cutoff",
        "단전·단수·단가스",
        "electricity, water or gas cut off",
        "사회보장급여법 §12①1",
        True,
        or_(S.power_cut == true(), S.water_cut == true(), S.gas_cut == true()),
    ),
    # 14 days: the sweep is a periodic export, not a live sensor (smart plugs alert after 24–50 h and
    # go to the 동 복지플래너 directly). Two missed weekly check-ins (우리동네돌봄단's weekly call) is the
    # point where a batch can still add something: early discovery of a 고독사위험자.
    Rule(
        "no-contact",
        f"{NO_CONTACT_DAYS}일 이상 연락 두절·장기 부재",
        f"no contact or absent for {NO_CONTACT_DAYS}+ days",
        "고독사예방법 §13 (고독사위험자 조기발견)",
        True,
        S.days_without_contact >= NO_CONTACT_DAYS,
    ),
    # One complaint is enough: odour is how lonely deaths and severe hoarding are usually found.
    Rule(
        "odour-pests",
        "악취·해충 이웃 민원",
        "neighbour complaints about odour or pests",
        "사회보장급여법 §13 (관리주체 신고), 저장강박 지원 조례",
        True,
        S.odour_pest_complaints >= 1,
    ),
    # A risk factor, not a crisis: counted and shown to the outreach worker, but opening a case for
    # every senior living alone would bury the crisis signals (a quarter of households in 영구임대).
    Rule(
        "isolated-senior",
        f"{SENIOR_AGE}세 이상 독거",
        f"living alone, {SENIOR_AGE} or older",
        "고독사예방법 §2·§13 (사회적 고립 1인 가구), 노인복지법",
        False,
        and_(S.lives_alone == true(), S.age >= SENIOR_AGE),
    ),
)
RULE_CODES = tuple(rule.code for rule in RULES)


# Column -> (Korean header, kind). Kinds: ref, complex, count, flag, alone, year.
COLUMNS: dict[str, tuple[str, str]] = {
    "resident_ref": ("입주민번호", "ref"),
    "complex_code": ("단지", "complex"),
    "fee_arrears_months": ("관리비체납개월", "count"),
    "rent_arrears_months": ("임대료체납개월", "count"),
    "days_without_contact": ("무연락일수", "count"),
    "power_cut": ("단전", "flag"),
    "water_cut": ("단수", "flag"),
    "gas_cut": ("단가스", "flag"),
    "odour_pest_complaints": ("악취해충민원", "count"),
    "lives_alone": ("독거", "alone"),
    "birth_year": ("출생연도", "year"),
}
REQUIRED = ("resident_ref", "complex_code")
_KOREAN = {korean: name for name, (korean, _) in COLUMNS.items()}
_YES = frozenset({"1", "y", "yes", "true", "예", "o", "t"})
_NO = frozenset({"", "0", "n", "no", "false", "아니오", "x", "f"})
# The order of values in an imported row (and of RiskSignal's columns after sweep_id).
SIGNAL_COLUMNS = (
    "resident_ref",
    "complex_code",
    "fee_arrears_months",
    "rent_arrears_months",
    "days_without_contact",
    "power_cut",
    "water_cut",
    "gas_cut",
    "odour_pest_complaints",
    "lives_alone",
    "age",
)


class SweepFileError(ValueError):
    """The file was rejected; ``problems`` holds every problem as ``line N: column: message``."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        where = f"{source}: " if source else ""
        listing = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{where}sweep file rejected, {len(problems)} problem(s):\n{listing}")


@dataclass
class ComplexCounts:
    households: int = 0
    flagged: int = 0
    by_rule: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULE_CODES, 0))
    new_flags: int = 0
    new_cases: int = 0


@dataclass(frozen=True)
class SweepReport:
    """What a sweep did, in counts per complex only (safe to hand to Prefect)."""

    sweep_id: int
    encoding: str
    complexes: dict[str, ComplexCounts]
    new_case_refs: list[str]

    def totals(self) -> ComplexCounts:
        total = ComplexCounts()
        for counts in self.complexes.values():
            total.households += counts.households
            total.flagged += counts.flagged
            total.new_flags += counts.new_flags
            total.new_cases += counts.new_cases
            for code, n in counts.by_rule.items():
                total.by_rule[code] += n
        return total

    def table(self) -> list[dict[str, Any]]:
        """One row per complex plus a total row; Korean-first keys (CLI and Prefect artifact)."""
        rows = [_table_row(code, counts) for code, counts in sorted(self.complexes.items())]
        return [*rows, _table_row("합계 total", self.totals())]


def _table_row(complex_code: str, counts: ComplexCounts) -> dict[str, Any]:
    row: dict[str, Any] = {"단지 complex": complex_code, "세대 households": counts.households}
    row.update({f"{rule.label_ko} {rule.code}": counts.by_rule[rule.code] for rule in RULES})
    row["위기 세대 flagged"] = counts.flagged
    row["신규 사례 new cases"] = counts.new_cases
    return row


# ------------------------------------------------------------------------------------------
# Reading and validating


def decode(data: bytes, source: str | None = None) -> tuple[str, str]:
    """The file's text and its encoding: UTF-8 (a BOM is dropped), else CP949."""
    encodings: tuple[str, ...]
    if data.startswith(b"\xef\xbb\xbf"):
        encodings = ("utf-8-sig",)
    else:
        encodings = ("utf-8", "cp949")
    error: UnicodeDecodeError | None = None
    for encoding in encodings:
        try:
            return data.decode(encoding), "utf-8" if encoding == "utf-8-sig" else encoding
        except UnicodeDecodeError as exc:
            error = exc
    assert error is not None
    line = data.count(b"\n", 0, error.start) + 1
    raise SweepFileError([f"line {line}: 파일이 UTF-8도 CP949도 아닙니다 (neither UTF-8 nor CP949)"], source)


def read_rows(
    text: str, residents: dict[str, tuple[str, int, bool]], year: int, source: str | None = None
) -> list[tuple[Any, ...]]:
    """Validate every row; the rows as SIGNAL_COLUMNS tuples, or SweepFileError listing every problem.

    ``residents`` maps a resident ref to (complex code, birth year, lives alone) from the registry.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    problems: list[str] = []
    header = next(reader, None)
    if header is None:
        raise SweepFileError(["line 1: 파일이 비어 있습니다 (the file is empty)"], source)
    names: list[str | None] = []
    for raw in header:
        cell = raw.strip()
        name = cell.lower() if cell.lower() in COLUMNS else _KOREAN.get(cell)
        if name is None:
            problems.append(f"line 1: {cell or '(blank)'}: 알 수 없는 열 (unknown column)")
        elif name in names:
            problems.append(f"line 1: {cell}: 열이 두 번 있습니다 (duplicate column)")
        names.append(name)
    problems += [f"line 1: {name}: 필수 열이 없습니다 (missing column)" for name in REQUIRED if name not in names]
    if problems:
        raise SweepFileError(problems, source)
    index = {name: i for i, name in enumerate(names) if name is not None}
    memos = {name: _CellValues(kind, year) for name, (_, kind) in COLUMNS.items() if kind not in ("ref", "complex")}
    rows = _rows_by_column(list(reader), len(names), index, memos, residents, year)
    if rows is None:
        # Something is wrong somewhere: the row-by-row pass says what, and on which line.
        rows = _rows_by_line(text, len(names), index, memos, residents, year, source)
    return rows


class _BadCell(ValueError):
    """A cell that is not a value of its column; the message follows ``line N: column: ``."""


def _parse_cell(kind: str, cell: str, year: int) -> Any:
    """The value of one cell of a column of ``kind`` (see COLUMNS) in a file of sweep year ``year``."""
    cell = cell.strip()
    if kind == "count" or kind == "year":
        if not cell:
            return 0 if kind == "count" else None
        try:
            number = int(cell)
        except ValueError:
            raise _BadCell(f"'{cell}'는 정수가 아닙니다 (not an integer)") from None
        if number < 0:
            raise _BadCell(f"음수입니다 (negative: {number})")
        if kind == "year" and not 1900 <= number <= year:
            raise _BadCell(f"{number}는 출생연도가 아닙니다 (not a birth year)")
        return number
    if kind == "flag" or kind == "alone":
        lowered = cell.lower()
        if lowered in _YES:
            return True
        if lowered in _NO:
            return None if kind == "alone" and not cell else False
        raise _BadCell(f"'{cell}'는 예/아니오가 아닙니다 (not yes/no)")
    return cell


class _CellValues(dict[str, Any]):
    """A column's values by raw cell, each parsed once (``_parse_cell``; a bad cell raises _BadCell).

    Value columns hold a handful of distinct cells ('0', '1', '', 'Y' …): a quarter of a million
    dict lookups at C speed instead of as many parses.
    """

    def __init__(self, kind: str, year: int) -> None:
        super().__init__()
        self.kind = kind
        self.year = year

    def __missing__(self, cell: str) -> Any:
        value = self[cell] = _parse_cell(self.kind, cell, self.year)
        return value


def _all_registered(known: list[tuple[str, int, bool] | None]) -> TypeGuard[list[tuple[str, int, bool]]]:
    """Whether every household was found in the registry (one scan at C speed)."""
    return None not in known


def _rows_by_column(
    records: list[list[str]],
    width: int,
    index: dict[str, int],
    memos: dict[str, _CellValues],
    residents: dict[str, tuple[str, int, bool]],
    year: int,
) -> list[tuple[Any, ...]] | None:
    """The rows of a file without any problem, else None; checked column by column.

    Python code per row costs ~6 µs (1.5 s for 250,000 rows); here every check runs in C over a
    whole column (map, zip, set, list equality), and only the age and living-alone fallbacks loop.
    """
    if set(map(len, records)) - {width}:
        records = [record for record in records if not _blank(record)]
        if set(map(len, records)) - {width}:
            return None
    if not records:
        return []
    count = len(records)
    cells = list(zip(*records, strict=True))
    del records  # the columns share the cells; the row lists can go

    def column(name: str) -> Iterable[str]:
        position = index.get(name)
        return cells[position] if position is not None else repeat("", count)

    refs = list(map(str.strip, column("resident_ref")))
    complexes = list(map(str.strip, column("complex_code")))
    known = list(map(residents.get, refs))
    if not _all_registered(known) or "" in refs or "" in complexes or len(set(refs)) != len(refs):
        return None
    if list(map(itemgetter(0), known)) != complexes:
        return None
    try:
        parsed = {name: list(map(memo.__getitem__, column(name))) for name, memo in memos.items()}
    except _BadCell:
        return None
    ages = [year - (born or registered[1]) for born, registered in zip(parsed["birth_year"], known, strict=True)]
    alone = [
        registered[2] if given is None else given
        for given, registered in zip(parsed["lives_alone"], known, strict=True)
    ]
    return list(
        zip(
            refs,
            complexes,
            parsed["fee_arrears_months"],
            parsed["rent_arrears_months"],
            parsed["days_without_contact"],
            parsed["power_cut"],
            parsed["water_cut"],
            parsed["gas_cut"],
            parsed["odour_pest_complaints"],
            alone,
            ages,
            strict=True,
        )
    )


def _blank(record: list[str]) -> bool:
    """A blank line, skipped (an empty record, or one empty cell in a file of several columns)."""
    return not record or len(record) == 1 and not record[0].strip()


def _rows_by_line(
    text: str,
    width: int,
    index: dict[str, int],
    memos: dict[str, _CellValues],
    residents: dict[str, tuple[str, int, bool]],
    year: int,
    source: str | None,
) -> list[tuple[Any, ...]]:
    """The rows, or SweepFileError with every problem and its line (the reader knows line numbers)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader)  # the header, checked by read_rows
    column_getters = [(name, index.get(name), memos.get(name)) for name in COLUMNS]
    problems: list[str] = []
    rows: list[tuple[Any, ...]] = []
    first_line: dict[str, int] = {}
    line = reader.line_num
    for record in reader:
        line, start = reader.line_num, line + 1
        if _blank(record):
            continue
        if len(record) != width:
            problems.append(f"line {start}: {len(record)}개 값, 열은 {width}개 (expected {width} values)")
            continue
        row: dict[str, Any] = {}
        for name, position, memo in column_getters:
            cell = record[position] if position is not None else ""
            if memo is None:
                row[name] = cell.strip()
                continue
            try:
                row[name] = memo[cell]
            except _BadCell as bad:
                problems.append(f"line {start}: {name}: {bad}")
        ref, complex_code = row["resident_ref"], row["complex_code"]
        if not ref:
            problems.append(f"line {start}: resident_ref: 비어 있습니다 (required)")
            continue
        if not complex_code:
            problems.append(f"line {start}: complex_code: 비어 있습니다 (required)")
            continue
        known = residents.get(ref)
        if known is None:
            problems.append(f"line {start}: resident_ref: '{ref}'는 등록되지 않은 입주민입니다 (unknown resident)")
            continue
        if known[0] != complex_code:
            problems.append(
                f"line {start}: complex_code: '{ref}'는 {complex_code}단지 입주민이 아닙니다 "
                f"(resident lives in complex {known[0]})"
            )
            continue
        if ref in first_line:
            problems.append(
                f"line {start}: resident_ref: '{ref}'가 중복됩니다, line {first_line[ref]} (duplicate resident)"
            )
            continue
        first_line[ref] = start
        if len(row) != len(COLUMNS):
            continue  # a bad value was reported above
        birth_year = row["birth_year"] or known[1]
        alone = known[2] if row["lives_alone"] is None else row["lives_alone"]
        rows.append(
            (
                ref,
                complex_code,
                row["fee_arrears_months"],
                row["rent_arrears_months"],
                row["days_without_contact"],
                row["power_cut"],
                row["water_cut"],
                row["gas_cut"],
                row["odour_pest_complaints"],
                bool(alone),
                year - birth_year,
            )
        )
    if problems:
        raise SweepFileError(problems, source)
    return rows


def _residents(connection: Connection) -> dict[str, tuple[str, int, bool]]:
    # The DB-API cursor and C-level zips: a quarter of a million rows through SQLAlchemy's Row
    # objects, or unpacked one by one in Python, cost a second.
    cursor = connection.connection.cursor()
    try:
        cursor.execute("SELECT ref, complex_code, birth_year, lives_alone FROM resident")
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if not rows:
        return {}
    refs, complexes, births, alone = zip(*rows, strict=True)
    return dict(zip(refs, zip(complexes, births, map(bool, alone), strict=True), strict=True))


# ------------------------------------------------------------------------------------------
# The sweep


def sweep(
    db: Database,
    path: Path,
    *,
    now: dt.datetime,
    actor: str = "detection-sweep",
    complexes: set[str] | None = None,
) -> SweepReport:
    """Import ``path``, flag, and open outreach cases in one transaction; SweepFileError writes nothing.

    ``complexes`` are those the person running it works for (None: every one): a row about a
    resident of another complex is refused as an unknown resident, naming its line.
    """
    source = path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SweepFileError([f"line 0: 파일을 읽을 수 없습니다 (cannot read file: {exc.strerror})"], source) from exc
    text, encoding = decode(data, source)
    # A quarter of a million small tuples (residents, rows, COPY lines) set off the cyclic GC again and
    # again, full collections included (~0.3 s in all); none of them are cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with db.transaction() as session:
            return _import(session, source, text, encoding, now, actor, complexes)
    finally:
        if collecting:
            gc.enable()


def _import(
    session: Session, source: str, text: str, encoding: str, now: dt.datetime, actor: str, allowed: set[str] | None
) -> SweepReport:
    """The sweep inside its transaction: validate, insert, flag, open cases, count."""
    connection = session.connection()
    residents = _residents(connection)
    if allowed is not None:
        residents = {ref: known for ref, known in residents.items() if known[0] in allowed}
    rows = read_rows(text, residents, now.year, source)
    run = SweepRun(source=source[:255], encoding=encoding, started_at=now)
    session.add(run)
    session.flush()
    _insert_signals(connection, run.id, rows)
    previous = session.scalar(select(func.max(SweepRun.id)).where(SweepRun.id < run.id))
    connection.execute(_flag_statement(run.id, previous))
    new_cases = _open_cases(session, run.id, now, actor)
    complexes = _counts(connection, run.id, rows, new_cases)
    run.households = len(rows)
    run.flagged = sum(c.flagged for c in complexes.values())
    run.new_cases = len(new_cases)
    # Counts only: the audit trail must not become a second copy of residents' personal data.
    trail.record(
        session,
        actor=actor,
        action="detection-sweep",
        sweep=run.id,
        households=run.households,
        flagged=run.flagged,
        new_cases=run.new_cases,
    )
    return SweepReport(run.id, encoding, complexes, [ref for ref, _ in new_cases])


def _insert_signals(connection: Connection, sweep_id: int, rows: list[tuple[Any, ...]]) -> None:
    """Bulk insert without ORM objects: COPY on PostgreSQL, executemany on SQLite."""
    columns = ", ".join(SIGNAL_COLUMNS)
    if connection.dialect.name == "postgresql":
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY risk_signal (sweep_id, {columns}) FROM STDIN") as copy:
            # In chunks: the server stores one while the next is formatted.
            for start in range(0, len(rows), _COPY_CHUNK):
                copy.write(_copy_text(sweep_id, rows[start : start + _COPY_CHUNK]))
        return
    # The sweep id (an int) written into the statement: the rows are then bound as they are.
    placeholders = ", ".join("?" for _ in SIGNAL_COLUMNS)
    cursor = connection.connection.cursor()
    try:
        statement = f"INSERT INTO risk_signal (sweep_id, {columns}) VALUES ({int(sweep_id)}, {placeholders})"
        cursor.executemany(statement, rows)
    finally:
        cursor.close()


_COPY_CHUNK = 25_000
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_BOOLEANS = {True: "t", False: "f"}


def _copy_text(sweep_id: int, rows: list[tuple[Any, ...]]) -> str:
    """``rows`` in COPY's text format, built column by column in C (map, zip, join).

    An f-string per row costs ~3 µs (0.8 s for 250,000 rows), psycopg's write_row three times that.
    """
    if not rows:
        return ""
    texts: list[Iterable[str]] = [repeat(str(sweep_id), len(rows))]
    for name, values in zip(SIGNAL_COLUMNS, zip(*rows, strict=True), strict=True):
        kind = S[name].type
        if isinstance(kind, Boolean):
            texts.append(map(_COPY_BOOLEANS.__getitem__, values))
        elif isinstance(kind, Integer):
            texts.append(map(str, values))
        else:
            # Checking the whole column first is cheaper than translating 250,000 refs (~0.2 s) that
            # have no tab, newline or backslash.
            joined = "".join(values)
            escape = any(char in joined for char in "\\\t\n\r")
            texts.append(map(methodcaller("translate", _COPY_ESCAPES), values) if escape else values)
    return "\n".join(map("\t".join, zip(*texts, strict=True))) + "\n"


def flags_query(sweep_id: int) -> Any:
    """Every (resident, complex, flag) the sweep's rows meet: one SELECT per rule, UNION ALL."""
    return union_all(
        *(
            select(S.resident_ref, S.complex_code, literal(rule.code).label("flag")).where(
                S.sweep_id == sweep_id, rule.predicate
            )
            for rule in RULES
        )
    )


def _flag_statement(sweep_id: int, previous: int | None) -> Any:
    """INSERT … SELECT of every flag, each marked new unless the previous sweep had it."""
    met = flags_query(sweep_id).subquery("met")
    if previous is None:
        new: ColumnElement[bool] = true()
    else:
        before = aliased(RiskFlag)
        new = ~exists().where(
            before.sweep_id == previous, before.resident_ref == met.c.resident_ref, before.flag == met.c.flag
        )
    return insert(RiskFlag).from_select(
        ["sweep_id", "resident_ref", "complex_code", "flag", "new"],
        select(literal(sweep_id), met.c.resident_ref, met.c.complex_code, met.c.flag, new),
    )


def _open_cases(session: Session, sweep_id: int, now: dt.datetime, actor: str) -> list[tuple[str, str]]:
    """Open one outreach case per newly flagged resident without an open case, in ``actor``'s name
    (who ran the sweep); (case ref, complex).

    One INSERT … SELECT writing each case's final ref, ``C-{year}-{id:04d}`` as in
    ``cases.open_case``: the ids are taken before the rows exist (PostgreSQL: the id sequence, as
    the column default would; SQLite: after the current maximum, as SQLite itself would, this
    transaction holding SQLite's single write lock since its first INSERT). Writing temporary refs
    and then updating 20,000 rows cost 1–2 s on PostgreSQL. Ids follow (complex, resident) order.
    """
    opening = [rule.code for rule in RULES if rule.opens_case]
    coordinator = (
        select(Staff.complex_code, func.min(Staff.id).label("id"))
        .where(Staff.role == "coordinator")
        .group_by(Staff.complex_code)
        .subquery("coordinator")
    )
    # The case's supervisor: the first of the centre that owns the complex (cases.check_launch).
    supervisor = (
        select(Complex.code.label("complex_code"), func.min(Staff.id).label("id"))
        .join(Staff, Staff.centre_code == Complex.centre_code)
        .where(Staff.role == "supervisor")
        .group_by(Complex.code)
        .subquery("supervisor")
    )
    flagged = (
        select(
            RiskFlag.complex_code,
            RiskFlag.resident_ref,
            coordinator.c.id.label("coordinator_id"),
            supervisor.c.id.label("supervisor_id"),
        )
        .join(coordinator, coordinator.c.complex_code == RiskFlag.complex_code)
        .join(supervisor, supervisor.c.complex_code == RiskFlag.complex_code)
        .where(
            RiskFlag.sweep_id == sweep_id,
            RiskFlag.new == true(),
            RiskFlag.flag.in_(opening),
            ~exists().where(
                Case.resident_ref == RiskFlag.resident_ref,
                Case.status == "open",
                Case.intervention.not_in(GROUP_INTERVENTIONS),
            ),
        )
        .group_by(RiskFlag.resident_ref, RiskFlag.complex_code, coordinator.c.id, supervisor.c.id)
    )
    connection = session.connection()
    order = (RiskFlag.complex_code, RiskFlag.resident_ref)
    if connection.dialect.name == "postgresql":
        # nextval over the sorted rows (a subquery with ORDER BY is not flattened into its caller).
        sequence = connection.scalar(select(func.pg_get_serial_sequence('"case"', "id")))
        ordered = flagged.order_by(*order).subquery("ordered")
        numbered = select(func.nextval(sequence).label("id"), *ordered.c).subquery("numbered")
    else:
        last = connection.scalar(select(func.coalesce(func.max(Case.id), 0)))
        numbered = flagged.add_columns((last + func.row_number().over(order_by=order)).label("id")).subquery("numbered")
    # C-YYYY-NNNN as f"{id:04d}" in cases.open_case: zero-padded to four digits, longer ids as they are.
    digits = cast(numbered.c.id, String)
    pad = func.substr(literal("000", String) + digits, func.length(digits))
    padded = case((func.length(digits) >= 4, digits), else_=pad)
    cases = select(
        numbered.c.id,
        (literal(f"C-{now.year}-", String) + padded).label("ref"),
        literal(OUTREACH, String).label("intervention"),
        literal("open", String).label("status"),
        literal("intake", String).label("stage"),
        numbered.c.complex_code,
        numbered.c.resident_ref,
        numbered.c.coordinator_id,
        numbered.c.supervisor_id,
        literal(now, DateTime(timezone=True)).label("opened_at"),
        literal(actor, String).label("opened_by"),
    )
    # Cost on PostgreSQL for a first sweep of 250,000 households (~20,000 cases): ~2 s on the 2-core
    # dev machine, ~85 % of it the four foreign-key checks per row (those on the small staff and
    # complex tables are sequential scans); steady-state sweeps open a few hundred cases.
    table = Case.__table__
    assert isinstance(table, Table)  # a mapped class's table, typed as any FromClause
    opened = connection.execute(
        insert(table)
        .from_select([c.name for c in cases.selected_columns], cases)
        .returning(table.c.ref, table.c.complex_code)
    ).all()
    return sorted((ref, complex_code) for ref, complex_code in opened)


def _counts(
    connection: Connection, sweep_id: int, rows: list[tuple[Any, ...]], new_cases: list[tuple[str, str]]
) -> dict[str, ComplexCounts]:
    complexes: dict[str, ComplexCounts] = defaultdict(ComplexCounts)
    # Households per complex from the imported rows still in memory rather than a scan of risk_signal.
    for code, n in Counter(map(itemgetter(SIGNAL_COLUMNS.index("complex_code")), rows)).items():
        complexes[code].households = n
    F = RiskFlag.__table__.c
    by_rule = (
        select(F.complex_code, F.flag, func.count(), func.sum(case((F.new == true(), 1), else_=0)))
        .where(F.sweep_id == sweep_id)
        .group_by(F.complex_code, F.flag)
    )
    for code, flag, n, new in connection.execute(by_rule):
        complexes[code].by_rule[flag] = n
        complexes[code].new_flags += int(new or 0)
    flagged = (
        select(F.complex_code, func.count(func.distinct(F.resident_ref)))
        .where(F.sweep_id == sweep_id)
        .group_by(F.complex_code)
    )
    for code, n in connection.execute(flagged):
        complexes[code].flagged = n
    for _, code in new_cases:
        complexes[code].new_cases += 1
    return dict(complexes)


# ------------------------------------------------------------------------------------------
# After commit: the outreach cases still waiting for their flow run


def pending_outreach(session: Session) -> list[tuple[str, str]]:
    """Open outreach cases without a flow run yet (case ref, complex), oldest first."""
    query = (
        select(Case.ref, Case.complex_code)
        .where(Case.intervention == OUTREACH, Case.status == "open", Case.flow_run_id.is_(None))
        .order_by(Case.id)
    )
    return [(ref, code) for ref, code in session.execute(query)]


def latest_flags(session: Session, resident_ref: str) -> list[Rule]:
    """The rules the resident met in the most recent sweep that included them (for the outreach visit)."""
    last = select(func.max(RiskSignal.sweep_id)).where(RiskSignal.resident_ref == resident_ref).scalar_subquery()
    codes = set(
        session.scalars(select(RiskFlag.flag).where(RiskFlag.resident_ref == resident_ref, RiskFlag.sweep_id == last))
    )
    return [rule for rule in RULES if rule.code in codes]
