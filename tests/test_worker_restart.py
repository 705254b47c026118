"""A case outlives its worker: stop the worker while the case waits, start a new one, finish the case.

Runs the deployments of prefect.yaml in a real process worker, exactly as `yeongye up` does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
from prefect.settings import PREFECT_API_URL

from registry.db import Database
from tests.conftest import PG_URL
from tests.driving import Script, coordinator_of, read_run
from yeongye import steering
from yeongye.mailcapture import MailCapture, read_captured
from yeongye.settings import get_settings
from yeongye.stack import PROJECT_ROOT, prefect_command, worker_command, worker_env


def _env(registry: Database, results_dir: Path, tmp_path: Path) -> dict[str, str]:
    env = worker_env(get_settings(), registry.url)
    env.update(
        {
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
            "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(results_dir),
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "YEONGYE_PROJECT_DIR": str(PROJECT_ROOT),
        }
    )
    return env


def _deployed(registry: Database, results_dir: Path, tmp_path: Path) -> dict[str, str]:
    """The work pool and every deployment of prefect.yaml, as `yeongye up` makes them; returns the workers' env."""
    env = _env(registry, results_dir, tmp_path)
    subprocess.run(
        prefect_command("work-pool", "create", "yeongye", "--type", "process", "--overwrite"),
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        prefect_command("--no-prompt", "deploy", "--all"), cwd=PROJECT_ROOT, env=env, check=True, capture_output=True
    )
    return env


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        worker_command("yeongye", get_settings().worker_limit, f"test-{log.stem}"),
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM twice (the worker ignores the first for a long time), then wait for the whole group."""
    for _ in range(2):
        with contextlib.suppress(ProcessLookupError):  # it may have stopped on its own
            os.killpg(worker.pid, signal.SIGTERM)
        time.sleep(1)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def _wait_until_paused_or_final(flow_run_id: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_run(flow_run_id).state
        if state and (state.is_final() or (state.is_paused() and state.state_details.pause_key)):
            return state.type.value
        time.sleep(0.5)
    raise AssertionError(f"flow run still {state.name if state else None} after {timeout}s")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_case_survives_worker_restart_and_sends_nothing_twice(
    prefect_server: None, registry: Database, mail: MailCapture, results_dir: Path, tmp_path: Path
) -> None:
    env = _deployed(registry, results_dir, tmp_path)

    first = _start_worker(env, tmp_path / "worker-1.log")
    try:
        launched = steering.launch(
            registry,
            intervention="hoarding",
            complex_code="E",
            resident_ref="R-E-001",
            by=coordinator_of(registry, "E"),
        )
        assert _wait_until_paused_or_final(launched.flow_run_id) == "PAUSED"
        assert len(read_captured(mail.mail_dir)) == 2  # the assessment handoffs went out
    finally:
        _stop_worker(first)

    script = Script(registry, launched.case_ref)
    script.answer(steering.current_wait(registry, launched.case_ref))  # answered while no worker runs
    time.sleep(3)
    assert read_run(launched.flow_run_id).state.name == "Resuming"  # type: ignore[union-attr]

    second = _start_worker(env, tmp_path / "worker-2.log")
    try:
        for _ in range(40):
            if _wait_until_paused_or_final(launched.flow_run_id) == "COMPLETED":
                break
            script.answer(steering.current_wait(registry, launched.case_ref))
    finally:
        _stop_worker(second)

    assert read_run(launched.flow_run_id).state.is_completed()  # type: ignore[union-attr]
    keys = Counter(m.headers["X-Yeongye-Key"] for m in read_captured(mail.mail_dir))
    assert len(keys) >= 20
    assert set(keys.values()) == {1}, [k for k, n in keys.items() if n > 1]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(not PG_URL, reason="two workers need Prefect on PostgreSQL (YEONGYE_TEST_DATABASE_URL; CI sets it)")
@pytest.mark.parametrize(("registry_url", "prefect_database"), [("postgresql", "postgresql")], indirect=True)
def test_two_executors_share_the_cases_and_a_case_moves_between_them(
    prefect_database: str, registry: Database, mail: MailCapture, results_dir: Path, tmp_path: Path
) -> None:
    """Two workers (each with its warm fork server) poll one Prefect server on PostgreSQL (on SQLite
    two busy workers get "database is locked"), their results in one directory standing in for a
    network store. Cases suspended on one resume on the other, finish, and send each email once."""
    env = _deployed(registry, results_dir, tmp_path)
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    workers = [_start_worker(env, log) for log in logs]
    try:
        launched = [
            steering.launch(
                registry,
                intervention="hoarding",
                complex_code=complex_code,
                resident_ref=f"R-{complex_code}-001",
                by=coordinator_of(registry, complex_code),
            )
            for complex_code in "ABC"
        ]
        open_cases = {c.case_ref: (c.flow_run_id, Script(registry, c.case_ref)) for c in launched}
        for _ in range(40):
            for case_ref, (flow_run_id, script) in list(open_cases.items()):
                if _wait_until_paused_or_final(flow_run_id) == "COMPLETED":
                    del open_cases[case_ref]
                else:
                    script.answer(steering.current_wait(registry, case_ref))
            if not open_cases:
                break
    finally:
        for worker in workers:
            _stop_worker(worker)

    assert open_cases == {}
    keys = Counter(m.headers["X-Yeongye-Key"] for m in read_captured(mail.mail_dir))
    assert len(keys) >= 60
    assert set(keys.values()) == {1}, [k for k, n in keys.items() if n > 1]
    executed = [
        {line.split("flow run ")[1].split(":")[0] for line in log.read_text().splitlines() if "forked as pid" in line}
        for log in logs
    ]
    assert all(executed), "each worker executed some run"
    assert executed[0] & executed[1], "a case suspended on one worker resumed on the other"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_killed_fork_server_stops_its_worker_and_the_case_goes_on(
    prefect_server: None, registry: Database, mail: MailCapture, results_dir: Path, tmp_path: Path
) -> None:
    """kill -9 of the warm process executions are forked from: the worker stops itself (the stack's
    supervisor would start it again; here the test does), nothing is left Crashed or sent twice, and
    the case finishes on the next worker."""
    env = _deployed(registry, results_dir, tmp_path)
    first = _start_worker(env, tmp_path / "worker-1.log")
    try:
        launched = steering.launch(
            registry,
            intervention="hoarding",
            complex_code="F",
            resident_ref="R-F-001",
            by=coordinator_of(registry, "F"),
        )
        assert _wait_until_paused_or_final(launched.flow_run_id) == "PAUSED"
        (server,) = [p for p in psutil.Process(first.pid).children() if "yeongye.forkserver" in " ".join(p.cmdline())]
        server.kill()
        assert first.wait(timeout=60) is not None  # the worker stopped itself
    finally:
        _stop_worker(first)
    assert "fork server exited" in (tmp_path / "worker-1.log").read_text()

    script = Script(registry, launched.case_ref)
    second = _start_worker(env, tmp_path / "worker-2.log")
    try:
        for _ in range(40):
            if _wait_until_paused_or_final(launched.flow_run_id) == "COMPLETED":
                break
            script.answer(steering.current_wait(registry, launched.case_ref))
    finally:
        _stop_worker(second)
    keys = Counter(m.headers["X-Yeongye-Key"] for m in read_captured(mail.mail_dir))
    assert len(keys) >= 20
    assert set(keys.values()) == {1}, [k for k, n in keys.items() if n > 1]
