"""Load agencies, complexes, staff and residents from a JSON registry file into the database.

A registry file is edited by hand, so a load either applies completely or not at all, and a failed
load lists every problem with the line it is on, so one round of fixes is enough. Loading is an
upsert by primary key: running the same file again changes nothing, and a corrected file can simply
be loaded over the previous one.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import accounts
from registry import audit as trail
from registry.catalog import AGENCY_TYPES
from registry.db import Database
from registry.models import Agency, AgencyType, Centre, Complex, Resident, Staff
from registry.schemas import CENTRE_CODE_MAX, COMPLEX_CODE_MAX, RegistryFile
from registry.text import TextError, clean_text

SAMPLE_PATH = Path(__file__).with_name("sample") / "gaon-gu.json"

# Section -> the key that identifies an item, in the order rows must be written (parents first).
_SECTIONS: dict[str, str] = {
    "centres": "code",
    "complexes": "code",
    "agencies": "id",
    "staff": "id",
    "residents": "ref",
}
# A district centre's admin loads their own complexes, staff and residents; the centres and the
# agencies (whose addresses receive residents' data) are the central centre's to load.
_CENTRAL_SECTIONS = ("centres", "agencies")
# The kind of centre each role works at (a centre admin may run either kind).
_ROLE_CENTRE = {"coordinator": "district", "supervisor": "district", "central": "central"}

Loc = tuple[str | int, ...]


class RegistryLoadError(ValueError):
    """The registry was not loaded; ``problems`` holds one human-readable line per problem."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        where = f"{source}: " if source else ""
        listing = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{where}registry not loaded, {len(problems)} problem(s):\n{listing}")


@dataclass(frozen=True)
class LoadReport:
    """How many rows of each kind were written (inserted or updated)."""

    agency_types: int
    centres: int
    complexes: int
    agencies: int
    staff: int
    residents: int


class _Problem(NamedTuple):
    loc: Loc
    message: str


def load_registry(
    db: Database, source: Path | Mapping[str, Any], *, actor: str = "loader", centre: str | None = None
) -> LoadReport:
    """Validate ``source`` (a JSON file or an already parsed document) and upsert it in one transaction.

    Fields a file leaves out (``active``, ``services`` ...) keep the value already stored, so that
    reloading the file does not, say, reactivate an agency someone switched off. ``centre`` limits
    the load to one district centre's rows (its admin's load); None loads anything.
    Raises RegistryLoadError, with nothing written, if anything in the file is wrong.
    """
    label = str(source) if isinstance(source, Path) else None
    text = _read_text(source) if isinstance(source, Path) else None
    data: Any = _parse(text, label) if text is not None else source

    problems: list[_Problem] = []
    registry: RegistryFile | None = None
    try:
        registry = RegistryFile.model_validate(data)
    except ValidationError as exc:
        problems += [_Problem(tuple(err["loc"]), _pydantic_message(err)) for err in exc.errors()]
    problems += _cross_check(db, data)
    if centre is not None:
        problems += _outside(db, data, centre)
    if problems or registry is None:
        raise RegistryLoadError(_format(problems, text), label)

    with db.transaction() as session:
        agency_types = sync_agency_types(session)
        for section in _SECTIONS:
            for item in getattr(registry, section):
                fields = item.model_dump(exclude_unset=True)
                if section == "residents" and (changed := _changed_fields(session, fields)):
                    # Overwriting someone's personal data is recorded: which fields, never their values.
                    trail.record(
                        session,
                        actor=actor,
                        action="resident-updated",
                        resident_ref=fields["ref"],
                        purpose="registry-load",
                        fields=changed,
                    )
                session.merge(_to_row(section, fields))
            # Staff and residents reference complexes through foreign keys the ORM cannot see
            # (no relationship), so write each kind before the next rather than rely on ordering.
            session.flush()
        report = LoadReport(
            agency_types=agency_types,
            centres=len(registry.centres),
            complexes=len(registry.complexes),
            agencies=len(registry.agencies),
            staff=len(registry.staff),
            residents=len(registry.residents),
        )
        # Counts only: the audit trail must not become a second copy of residents' personal data.
        trail.record(session, actor=actor, action="registry-load", **asdict(report))
    return report


def load_sample(db: Database, *, actor: str) -> LoadReport:
    """Load the sample district, and give its staff the demo password (accounts.DEMO_PASSWORD).

    Only this does: a registry loaded from any other file has no password until an admin sets one.
    """
    report = load_registry(db, SAMPLE_PATH, actor=actor)
    staff_ids = [item["id"] for item in json.loads(SAMPLE_PATH.read_text(encoding="utf-8"))["staff"]]
    with db.transaction() as session:
        accounts.give_demo_password(session, staff_ids, by=actor)
    return report


def _changed_fields(session: Session, fields: dict[str, Any]) -> list[str]:
    """The fields of a stored resident that ``fields`` would change; none for a new resident."""
    stored = session.get(Resident, fields["ref"])
    if stored is None:
        return []
    return sorted(name for name, value in fields.items() if name != "ref" and getattr(stored, name) != value)


def sync_agency_types(session: Session) -> int:
    """Upsert the catalog's agency types, which agencies reference; returns how many there are."""
    for info in AGENCY_TYPES:
        session.merge(AgencyType(**info._asdict()))
    session.flush()
    return len(AGENCY_TYPES)


def _to_row(section: str, fields: dict[str, Any]) -> Centre | Complex | Agency | Staff | Resident:
    if section == "centres":
        return Centre(**fields)
    if section == "complexes":
        return Complex(**fields)
    if section == "agencies":
        # The file says "type" (what editors think in); the column is the foreign key type_code.
        if "type" in fields:
            fields["type_code"] = fields.pop("type")
        return Agency(**fields)
    if section == "staff":
        return Staff(**fields)
    return Resident(**fields)


def _read_text(path: Path) -> str:
    try:
        # utf-8-sig: editors on Windows like to prepend a byte-order mark.
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryLoadError([f"cannot read file: {exc}"], str(path)) from exc


def _parse(text: str, label: str | None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        message = f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise RegistryLoadError([message], label) from exc


def _pydantic_message(err: Any) -> str:
    # Our own ValueErrors read better without pydantic's "Value error, " prefix; the location
    # already names the field a text check refused.
    cause = err.get("ctx", {}).get("error") if err["type"] == "value_error" else None
    if isinstance(cause, TextError):
        return cause.problem
    return str(cause if cause is not None else err["msg"])


def _cross_check(db: Database, data: Any) -> list[_Problem]:
    """Checks that span items or need the database; they run on the raw document so that they
    still report when some items are malformed."""
    if not isinstance(data, Mapping):
        return []
    sections = {
        name: [item if isinstance(item, Mapping) else {} for item in data.get(name) or []]
        for name in _SECTIONS
        if isinstance(data.get(name) or [], list)
    }
    problems: list[_Problem] = []
    for name, key in _SECTIONS.items():
        first_at: dict[str, int] = {}
        for index, item in enumerate(sections.get(name, [])):
            value = item.get(key)
            if not isinstance(value, str):
                continue
            if value in first_at:
                message = f"duplicate {key} {value!r}, already at {name}[{first_at[value]}]"
                problems.append(_Problem((name, index, key), message))
            else:
                first_at[value] = index

    in_file = {item.get("code") for item in sections.get("complexes", [])}
    references = [
        ((name, index, "complex_code"), code)
        for name in ("staff", "residents")
        for index, item in enumerate(sections.get(name, []))
        if isinstance(code := item.get("complex_code"), str) and code not in in_file and _storable(code)
    ]
    if references:
        # A file may add residents to complexes loaded earlier, so those are fine too.
        wanted = {code for _, code in references}
        with db.transaction() as session:
            stored = set(session.scalars(select(Complex.code).where(Complex.code.in_(wanted))))
        problems += [_Problem(loc, f"unknown complex {code!r}") for loc, code in references if code not in stored]
    return problems + _centre_problems(db, sections)


def _centre_problems(db: Database, sections: Mapping[str, list[Mapping[str, Any]]]) -> list[_Problem]:
    """Centres referenced exist, and each member of staff fits their centre: a coordinator works at
    a complex of their own district centre, the central role belongs to the central centre."""
    kinds = {item.get("code"): item.get("kind") for item in sections.get("centres", [])}
    complex_centre = {item.get("code"): item.get("centre_code") for item in sections.get("complexes", [])}
    wanted = {
        code
        for name in ("complexes", "staff")
        for item in sections.get(name, [])
        if isinstance(code := item.get("centre_code"), str) and code not in kinds and _storable(code, CENTRE_CODE_MAX)
    }
    wanted_complexes = {
        code
        for item in sections.get("staff", [])
        if isinstance(code := item.get("complex_code"), str) and code not in complex_centre and _storable(code)
    }
    with db.transaction() as session:
        kinds |= dict(session.execute(select(Centre.code, Centre.kind).where(Centre.code.in_(wanted))).tuples().all())
        complex_centre |= dict(
            session.execute(select(Complex.code, Complex.centre_code).where(Complex.code.in_(wanted_complexes)))
            .tuples()
            .all()
        )
    problems: list[_Problem] = []
    for name in ("complexes", "staff"):
        for index, item in enumerate(sections.get(name, [])):
            code = item.get("centre_code")
            if not isinstance(code, str) or not _storable(code, CENTRE_CODE_MAX):
                continue  # the item's own check reports it
            if code not in kinds:
                problems.append(_Problem((name, index, "centre_code"), f"unknown centre {code!r}"))
            elif name == "complexes" and kinds[code] != "district":
                problems.append(
                    _Problem((name, index, "centre_code"), f"a complex belongs to a district centre, not {code!r}")
                )
            elif name == "staff" and (role := item.get("role")) in _ROLE_CENTRE and _ROLE_CENTRE[role] != kinds[code]:
                problems.append(_Problem((name, index, "role"), f"a {role} works at a {_ROLE_CENTRE[role]} centre"))
            elif name == "staff" and item.get("role") == "coordinator":
                at = complex_centre.get(item.get("complex_code"))
                if at is not None and at != code:
                    problems.append(
                        _Problem(
                            (name, index, "complex_code"), f"complex {item.get('complex_code')!r} is centre {at!r}'s"
                        )
                    )
    return problems


def _outside(db: Database, data: Any, centre: str) -> list[_Problem]:
    """The items of a district admin's file that are not their centre's to load."""
    if not isinstance(data, Mapping):
        return []
    problems = [
        _Problem((name,), f"only the central centre's admin loads {name}")
        for name in _CENTRAL_SECTIONS
        if data.get(name)
    ]
    items = {
        name: [i for i in data.get(name) or [] if isinstance(i, Mapping)]
        for name in ("complexes", "staff", "residents")
    }
    in_file = {str(c.get("code")): c.get("centre_code") for c in items["complexes"]}
    codes = {str(i.get("complex_code")) for i in items["residents"]} | set(in_file)
    with db.transaction() as session:
        stored: dict[str, str | None] = dict(
            session.execute(select(Complex.code, Complex.centre_code).where(Complex.code.in_(codes))).tuples().all()
        )
    for name, key in (("complexes", "code"), ("staff", "id"), ("residents", "ref")):
        for index, item in enumerate(items[name]):
            if name == "residents":
                code = str(item.get("complex_code"))
                owner = in_file[code] if code in in_file else stored.get(code)
            elif name == "complexes" and stored.get(str(item.get("code"))) not in (None, centre):
                owner = stored.get(str(item.get("code")))  # another centre's complex, moved by this file
            else:
                owner = item.get("centre_code")
            if owner != centre:
                problems.append(_Problem((name, index), f"{item.get(key)!r} is not centre {centre!r}'s"))
    return problems


def _storable(code: str, max_len: int = COMPLEX_CODE_MAX) -> bool:
    """Only a code the database could hold is looked up in it; the item's own check reports the others."""
    try:
        clean_text(code, "code", max_len)
    except TextError:
        return False
    return True


def _format(problems: list[_Problem], text: str | None) -> list[str]:
    """Render problems in file order as ``residents[4].complex_code: ... (line 312)``."""
    lines = _value_lines(text) if text is not None else {}
    order = list(_SECTIONS)

    def line_of(loc: Loc) -> int | None:
        # A missing field has no line of its own: fall back to its item, then its section.
        return next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)

    def sort_key(item: tuple[_Problem, int | None]) -> tuple[int, int, int]:
        loc, line = item[0].loc, item[1]
        section = order.index(loc[0]) if loc and loc[0] in order else -1
        index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else -1
        return (line or 0, section, index)

    located = sorted(((problem, line_of(problem.loc)) for problem in problems), key=sort_key)
    return [
        f"{_loc_text(problem.loc)}: {problem.message}" + (f" (line {line})" if line is not None else "")
        for problem, line in located
    ]


def _loc_text(loc: Loc) -> str:
    if not loc:
        return "(document)"
    text = str(loc[0])
    for part in loc[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _value_lines(text: str) -> dict[Loc, int]:
    """Map every path in a JSON text (known to parse) to the line its key or array item starts on.

    The json module keeps no positions, so walk the text alongside it: containers by hand, scalars
    with the decoder.
    """
    newlines = [i for i, char in enumerate(text) if char == "\n"]
    decoder = json.JSONDecoder()
    lines: dict[Loc, int] = {}

    def line_at(pos: int) -> int:
        return bisect.bisect_right(newlines, pos) + 1

    def skip(pos: int) -> int:
        match = _WHITESPACE.match(text, pos)
        assert match is not None  # the pattern also matches the empty string
        return match.end()

    def walk(pos: int, path: Loc) -> int:
        """Walk the value at ``pos``; return the position just after it."""
        pos = skip(pos)
        if text[pos] == "{":
            pos = skip(pos + 1)
            while text[pos] != "}":
                key, pos = decoder.raw_decode(text, pos)
                lines[(*path, key)] = line_at(pos)
                pos = skip(walk(skip(pos) + 1, (*path, key)))  # + 1 steps over the ':'
                if text[pos] == ",":
                    pos = skip(pos + 1)
            return pos + 1
        if text[pos] == "[":
            pos, index = skip(pos + 1), 0
            while text[pos] != "]":
                lines[(*path, index)] = line_at(pos)
                pos = skip(walk(pos, (*path, index)))
                if text[pos] == ",":
                    pos = skip(pos + 1)
                index += 1
            return pos + 1
        return decoder.raw_decode(text, pos)[1]

    walk(0, ())
    return lines
