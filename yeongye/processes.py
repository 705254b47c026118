"""Child processes of the local stack: started in their own sessions, stopped as whole trees.

Children run in their own sessions (process groups), so a terminal's Ctrl-C reaches only the
stack process and the shutdown order stays under its control. A Prefect worker can ignore the first
SIGTERM for a long time (it forwards SIGINT to itself and keeps going); a second SIGTERM kills
it, so stopping always sends TERM, waits, sends TERM again, and finally KILL. If the stack process
is SIGKILLed, the next ``up`` on the same data_dir stops what it left behind (``stop_orphans``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

import psutil

log = logging.getLogger(__name__)

CLI_TIMEOUT = 300.0
STOP_GRACE_SECONDS = 10.0
EXIT_ON_OWN_SECONDS = 5.0


class StackError(RuntimeError):
    """A part of the stack could not start or died; the message says which and why."""


class StackInterrupted(Exception):
    """SIGINT/SIGTERM arrived during start-up; unwinds to the shutdown code."""


# --------------------------------------------------------------------------------------------
# Child processes


def tail(path: Path, lines: int = 40) -> str:
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


class Child:
    """A child process in its own session, logging to a file, stoppable as a whole tree.

    ``start()`` runs the command; after ``stop()`` it can run it again (a supervised restart),
    appending to the same log. A ``yeongye.supervisor.Service``.
    """

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._args = args
        self._env = env
        self._cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.create_time = 0.0

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        """The running (or last) process; only after ``start()``."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._proc

    def start(self) -> None:
        self._log = _open_log(self.log_path, " ".join(self._args))
        try:
            self._proc = subprocess.Popen(
                self._args,
                env=self._env,
                cwd=self._cwd,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: killpg reaches its helpers too
            )
        except BaseException:
            self._log.close()
            raise
        try:
            self.create_time = psutil.Process(self._proc.pid).create_time()
        except psutil.Error:
            self.create_time = 0.0
        log.debug("%s started, pid %s", self.name, self._proc.pid)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def failure(self, what: str) -> StackError:
        return StackError(f"{what}\n--- {self.log_path} ---\n{tail(self.log_path)}")

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop the child and everything it started (see ``_stop_tree``); idempotent."""
        proc = self._proc
        try:
            if proc is not None:
                _stop_tree(self.name, proc.pid, grace, reap=proc.poll)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        finally:
            if self._log is not None:
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
    # Children lead their own group (pgid == pid). One that died on its own may have left helpers
    # in it, which would keep its port or database connections from a restarted one.
    pgid = (_pgid(family[0]) if family else None) or pid
    if not family and not _group_running(pgid):
        reap()
        return
    started = time.monotonic()

    def still_running() -> bool:
        reap()
        return any(running(p) for p in family) or _group_running(pgid)

    outsiders = [p for p in family if _pgid(p) != pgid]
    # A flow run that has just suspended is exiting on its own: signalled now, the server would
    # record it Crashed instead of Suspended and the case could not be resumed. Let those finish.
    _wait_until(lambda: not any(running(p) for p in outsiders), EXIT_ON_OWN_SECONDS)
    outsiders = [p for p in outsiders if running(p)]
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
        _wait_until(lambda: not any(running(p) for p in outsiders), grace)
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
        if not running(root):
            return []
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def running(process: psutil.Process) -> bool:
    # Zombies are dead; PID 1 in a container may never reap them, so never wait on them.
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _group_running(pgid: int) -> bool:
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(process.pid) == pgid and running(process):
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


class Stopper:
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


def run_cli(
    stopper: Stopper,
    name: str,
    args: list[str],
    env: dict[str, str],
    log_path: Path,
    cwd: Path | None = None,
    timeout: float = CLI_TIMEOUT,
) -> None:
    """Run a short Prefect CLI command; a stop request or timeout kills it."""
    child = Child(name, args, env, log_path, cwd)
    child.start()
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
# Leftovers of a killed stack, shutdown steps


def record_children(path: Path, children: list[Child]) -> None:
    """Remember our long-running children, so a later ``up`` can stop them if we get SIGKILLed."""
    rows = [{"name": c.name, "pid": c.proc.pid, "create_time": c.create_time} for c in children]
    # Rewritten on every restart: never leave a half-written file for `up` or a reader to trip on.
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(rows))
    os.replace(tmp, path)


def stop_orphans(path: Path) -> None:
    """Stop the server/worker processes in ``path`` left by a previous ``up`` that died without cleaning up.

    A process counts only if its PID *and* start time match, so a recycled PID is never hit.
    (A left-over embedded PostgreSQL needs nothing: get_server() adopts a running server.)
    """
    try:
        rows = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return
    # Newest first (worker before server), as in a normal shutdown.
    for row in reversed(rows) if isinstance(rows, list) else []:
        try:
            process = psutil.Process(int(row["pid"]))
            if abs(process.create_time() - float(row["create_time"])) > 0.5 or not running(process):
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


def quietly(what: str, action: Callable[[], None]) -> None:
    """Shutdown steps must all run even if one fails; log the failure and go on."""
    try:
        action()
    except Exception:
        log.exception("%s 중지 중 오류 (error while stopping %s)", what, what)
