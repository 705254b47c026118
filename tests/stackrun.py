"""Running the real stack (`python -m yeongye.stack`) from tests: start it, drive it, stop it, find its processes.

Used by the stack tests (tests/test_stack.py) and the fault-injection suite (tests/test_faults.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

from yeongye.mailcapture import CapturedMail, read_captured
from yeongye.stack import WORKER_NAME


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stack_env(
    data_dir: Path, prefect_port: int, smtp_port: int, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The stack's environment: nothing of the test process's own settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YEONGYE_", "PREFECT_"))}
    env.update(
        YEONGYE_DATA_DIR=str(data_dir),
        YEONGYE_PREFECT_PORT=str(prefect_port),
        YEONGYE_SMTP_PORT=str(smtp_port),
        YEONGYE_ANSWER_PORT=str(free_port()),
        YEONGYE_EMBEDDED_POSTGRES="true",
        YEONGYE_SMTP_CAPTURE="true",
    )
    env.update(extra or {})
    return env


def start(
    data_dir: Path, prefect_port: int, smtp_port: int, output: Path, extra: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with output.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "yeongye.stack"],
            env=stack_env(data_dir, prefect_port, smtp_port, extra),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
        )


def wait_ready(proc: subprocess.Popen[bytes], data_dir: Path, output: Path, timeout: float = 150) -> dict:
    deadline = time.monotonic() + timeout
    stack_file = data_dir / "stack.json"
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"stack exited early ({proc.returncode}):\n{output.read_text()}"
        if stack_file.exists():
            info = json.loads(stack_file.read_text())
            response = httpx.get(f"{info['prefect_api_url']}/health", timeout=5)
            assert response.status_code == 200
            return info
        time.sleep(0.2)
    raise AssertionError(f"stack not ready in {timeout} s:\n{output.read_text()}")


def prefect_http(data_dir: Path) -> httpx.Client:
    """An HTTP client of the running stack's Prefect API, presenting the stack's auth string."""
    info = json.loads((data_dir / "stack.json").read_text())
    user, _, password = (data_dir / "prefect-auth").read_text().strip().partition(":")
    return httpx.Client(base_url=info["prefect_api_url"], auth=(user, password), timeout=10)


def cli(data_dir: Path, prefect_port: int, smtp_port: int) -> Callable[..., str]:
    """Run `yeongye ...` against the running stack as a user would; returns its output."""

    def run(*args: str) -> str:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "yeongye"), *args],
            env=stack_env(data_dir, prefect_port, smtp_port),
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert done.returncode == 0, f"yeongye {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    return run


def case_ref_of(launch_output: str) -> str:
    found = re.search(r"C-\d{4}-\d{4}", launch_output)
    assert found, launch_output
    return found.group(0)


def wait_for_mail(data_dir: Path, wanted: Callable[[CapturedMail], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not any(wanted(m) for m in read_captured(data_dir / "mail")):
        assert time.monotonic() < deadline, [(m.to, m.subject) for m in read_captured(data_dir / "mail")]
        time.sleep(0.5)


def auto_runs(api: httpx.Client, deployment_id: str, state: str) -> list[dict]:
    """Runs the scheduler created (not `yeongye deadlines`) for the deployment, in the given state."""
    body = {"flow_runs": {"deployment_id": {"any_": [deployment_id]}, "state": {"type": {"any_": [state]}}}}
    runs = api.post("/flow_runs/filter", json=body).json()
    return [run for run in runs if run["auto_scheduled"]]


def kill_worker_and_wait_for_the_new_one(api: httpx.Client, data_dir: Path) -> None:
    """SIGKILL the worker; wait until the stack has started (and recorded) a new one that heartbeats."""
    children_file = data_dir / "stack-children.json"

    def worker_pid() -> int:
        return next(int(row["pid"]) for row in json.loads(children_file.read_text()) if row["name"] == "Prefect worker")

    killed, killed_at = worker_pid(), datetime.now(UTC)
    os.kill(killed, signal.SIGKILL)
    deadline = time.monotonic() + 90
    while True:
        assert time.monotonic() < deadline, "no new worker"
        workers = api.post("/work_pools/yeongye/workers/filter", json={}).json()
        beats = [w["last_heartbeat_time"] for w in workers if w["name"] == WORKER_NAME and w["last_heartbeat_time"]]
        if worker_pid() != killed and any(datetime.fromisoformat(beat) > killed_at for beat in beats):
            break
        time.sleep(0.5)
    new = psutil.Process(worker_pid())
    assert "yeongye.worker" in new.cmdline() and new.is_running()


def stack_processes(data_dir: Path) -> list[psutil.Process]:
    """Processes belonging to this data dir: by command line or by inherited environment.

    The environment catches what the command line does not show: `prefect server start`,
    the worker, and PostgreSQL's helper processes ("postgres: checkpointer").
    """
    needle = str(data_dir)
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.pid == os.getpid():
            continue
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if needle in " ".join(process.info["cmdline"] or []) or any(
                needle in value for value in process.environ().values()
            ):
                found.append(process)
        except psutil.Error:
            continue
    return found


def stop(proc: subprocess.Popen[bytes], data_dir: Path, output: Path) -> float:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"stack did not stop within 60 s:\n{output.read_text()}") from None
    elapsed = time.monotonic() - started
    assert code == 0, output.read_text()
    assert not (data_dir / "stack.json").exists()
    left = stack_processes(data_dir)
    assert not left, [(p.pid, p.info["cmdline"]) for p in left]
    return elapsed
