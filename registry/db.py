"""Engines, transactions and migrations for the registry database (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


_POSTGRES_PREFIXES = (
    "postgresql://",
    "postgres://",
    "postgresql+psycopg://",
    "postgresql+asyncpg://",
    "postgresql+psycopg2://",
)


def with_driver(url: str, driver: str) -> str:
    """The same PostgreSQL URL with ``driver`` (users paste plain URLs); other URLs unchanged."""
    for prefix in _POSTGRES_PREFIXES:
        if url.startswith(prefix):
            return f"postgresql+{driver}://" + url[len(prefix) :]
    return url


def normalise_url(url: str) -> str:
    """The registry talks to PostgreSQL through psycopg 3."""
    return with_driver(url, "psycopg")


def make_engine(url: str) -> Engine:
    """An engine whose errors never quote a statement's parameters (a resident's name, a phone
    number): such an error may end up in a log or a task's state, where they must not."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets the CLI read while a flow writes; foreign keys are off by default in SQLite.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, hide_parameters=True)


class Database:
    """A registry database: one engine, short transactions."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Commit everything done in the block, or nothing at all."""
        with self._sessions.begin() as session:
            yield session

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        from alembic import command  # imported where it is needed: every command would pay for it

        command.upgrade(alembic_config(self.url), "head")

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config
