"""What a running task needs from its surroundings: the registry, the clock, the settings.

Kept in one place so tests can swap the clock and each process opens one engine per database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.calendar import BusinessCalendar, Clock, SystemClock
from registry.db import Database
from registry.models import HolidayOverride
from yeongye.settings import Settings, get_settings

_databases: dict[str, Database] = {}
_clock: Clock = SystemClock()


def settings() -> Settings:
    return get_settings()


def database() -> Database:
    url = settings().registry_url
    if url not in _databases:
        _databases[url] = Database(url)
    return _databases[url]


@contextmanager
def transaction() -> Iterator[Session]:
    with database().transaction() as session:
        yield session


def business_calendar(session: Session) -> BusinessCalendar:
    """The holiday calendar with the overrides recorded in the registry."""
    rows = session.scalars(select(HolidayOverride))
    return BusinessCalendar({row.day: row.holiday for row in rows})


def clock() -> Clock:
    return _clock


def use_clock(new_clock: Clock) -> None:
    """Replace the clock (tests, simulations)."""
    global _clock
    _clock = new_clock
