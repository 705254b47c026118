"""What Prefect must not hold, kept in the registry and referred to by number: notes and incidents.

Prefect stores every flow-run input, task state message and log line, and anyone with access to
its UI or API reads them. People type free text (a rejection's reason, a conference held at the
resident's home), and a failed database statement quotes its parameters (names, phone numbers).
So the text goes to a ``note`` and the form carries the note's id; a task's error goes in full to
an ``incident`` and Prefect is told ``incident-<id>``.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from sqlalchemy.orm import Session

from registry.cases import CaseError
from registry.models import Case, Incident, Note

# What a note is for: a note written as a place is never read as a reason.
REASON, PLACE = "reason", "place"
KINDS = (REASON, PLACE)


def write(session: Session, case: Case, *, kind: str, text: str, by: str, at: dt.datetime | None = None) -> int:
    """Keep ``text`` for ``case`` and return the id a form carries instead of it."""
    assert kind in KINDS
    note = Note(case_id=case.id, kind=kind, text=text, written_by=by, written_at=at or dt.datetime.now(dt.UTC))
    session.add(note)
    session.flush()
    return note.id


def text_of(session: Session, case: Case, note_id: int | None, kind: str, field: str) -> str:
    """The text of note ``note_id`` ("" for no note); a ``CaseError`` naming ``field`` if it is not
    a note of this kind for this case (a number typed into the Prefect form may name any note)."""
    if note_id is None:
        return ""
    note = session.get(Note, note_id)
    if note is None or note.case_id != case.id or note.kind != kind:
        raise CaseError(f"{field}: 메모 {note_id}는 이 사례의 {kind} 메모가 아닙니다 (not a {kind} note of this case)")
    return note.text


def record_incident(session: Session, *, case_ref: str | None, task: str, error_class: str, detail: str) -> int:
    """Keep a failed task's error in full; returns the number Prefect is told instead."""
    incident = Incident(
        case_ref=case_ref[:64] if case_ref else None, task=task[:64], error_class=error_class[:128], detail=detail
    )
    session.add(incident)
    session.flush()
    return incident.id


INCIDENT_LOGGER = "registry.incidents"
LOG_FILE = "registry.log"


def incident_log(data_dir: Path) -> logging.Logger:
    """The registry's own log file (``<data_dir>/logs/registry.log``), for an incident the registry
    could not store. It is not a child of ``yeongye`` and does not propagate, so Prefect, which
    forwards ``yeongye`` to its API, never receives it."""
    log = logging.getLogger(INCIDENT_LOGGER)
    log.propagate = False
    log.setLevel(logging.INFO)
    path = (data_dir / "logs" / LOG_FILE).absolute()
    if not any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path for h in log.handlers):
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
    return log
