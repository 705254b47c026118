"""The stack's supervision: dead parts come back, after growing pauses, with nothing of the old one left.

Real processes, a real SMTP capture thread; the stack itself is tested in test_stack.py.
"""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import sys
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import psutil
import pytest

from yeongye.mailcapture import MailCapture, read_captured
from yeongye.processes import Child
from yeongye.supervisor import InProcess, Service, Supervisor


def _until(done: Callable[[], bool], supervisor: Supervisor, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        supervisor.check()
        time.sleep(0.05)


class Flaky:
    """A service that dies when told and then fails to start ``failing_starts`` times."""

    name = "flaky"

    def __init__(self, failing_starts: int) -> None:
        self.failing_starts = failing_starts
        self.attempts: list[float] = []
        self.running = True

    def start(self) -> None:
        self.attempts.append(time.monotonic())
        if len(self.attempts) <= self.failing_starts:
            raise OSError("port in use")
        self.running = True

    def stop(self) -> None:
        self.running = False

    def alive(self) -> bool:
        return self.running


def test_restarts_back_off_exponentially_up_to_the_cap_and_start_over_once_stable() -> None:
    flaky = Flaky(failing_starts=4)
    restarted: list[Service] = []
    supervisor = Supervisor(on_restart=restarted.append, first_delay=0.2, max_delay=0.8, stable_after=1.0)
    supervisor.watch(flaky)
    died = time.monotonic()
    flaky.running = False
    _until(lambda: len(flaky.attempts) == 5, supervisor)
    assert flaky.running and restarted == [flaky]
    times = [died, *flaky.attempts]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    for gap, wanted in zip(gaps, [0.2, 0.4, 0.8, 0.8, 0.8], strict=True):
        assert wanted <= gap < wanted + 1.0, gaps

    # Up for longer than stable_after: the next death is the first again.
    _until(lambda: time.monotonic() - flaky.attempts[-1] > 1.0, supervisor)
    died = time.monotonic()
    flaky.running = False
    _until(lambda: len(flaky.attempts) == 6, supervisor)
    assert 0.2 <= flaky.attempts[-1] - died < 0.8


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[Child]:
    """A child that, like `prefect server start`, has a helper process in its group."""
    helper = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"
    child = Child("sleeper", [sys.executable, "-c", helper], dict(os.environ), tmp_path / "sleeper.log")
    child.start()
    yield child
    child.stop(grace=2.0)


def _group(pgid: int) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (OSError, psutil.Error):
            continue
    return found


def test_a_killed_child_is_restarted_and_what_it_left_behind_is_stopped(sleeper: Child) -> None:
    recorded: list[int] = []
    supervisor = Supervisor(on_restart=lambda _: recorded.append(sleeper.proc.pid), first_delay=0.1)
    supervisor.watch(sleeper)
    old = sleeper.proc.pid
    _until(lambda: len(_group(old)) == 2, supervisor)  # the helper is up

    os.kill(old, signal.SIGKILL)
    _until(lambda: sleeper.alive() and sleeper.proc.pid != old, supervisor)
    assert recorded == [sleeper.proc.pid]
    assert _group(old) == []  # the orphaned helper did not survive the restart
    headers = [line for line in sleeper.log_path.read_text().splitlines() if line.startswith("=====")]
    assert len(headers) == 2  # one log file, a header per start


def _send(port: int, subject: str) -> None:
    message = EmailMessage()
    message["From"] = "yeongye@localhost"
    message["To"] = "agency@example.kr"
    message["Subject"] = subject
    message.set_content("본문")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(message)


def test_a_dead_server_thread_is_replaced_on_the_same_port(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    made: list[MailCapture] = []

    def make() -> MailCapture:
        made.append(MailCapture(tmp_path / "mail", port))
        return made[-1]

    capture = InProcess("mail capture", make, port)
    capture.start()
    try:
        supervisor = Supervisor(first_delay=0.1)
        supervisor.watch(capture)
        _send(port, "첫 메일")
        made[0].stop()  # as if its thread had died: the port closes
        _until(lambda: len(made) == 2 and capture.alive(), supervisor)
        _send(port, "다시 시작 후")
        assert [m.subject for m in read_captured(tmp_path / "mail")] == ["첫 메일", "다시 시작 후"]
    finally:
        capture.stop()
