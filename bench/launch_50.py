#!/usr/bin/env python
"""Launch N hoarding cases at once on a fresh local stack and measure what happens.

Why: the local stack prefers PostgreSQL because Prefect on SQLite is known to fail ("database is
locked") once a few dozen flow runs are active together. This bench checks that claim end to end
on the same stack ``yeongye up`` runs: it starts ``python -m yeongye.stack`` on a throwaway data
dir, loads the sample registry plus N fictional residents, logs in each complex's coordinator (the
sample's demo password), launches N cases from N threads at the same instant, each as its
complex's coordinator, and waits until every case has sent its first email and its flow run is suspended
(Paused) waiting for an agency.

It reports launch errors, failed/crashed flow runs and cases that never sent an email, the
launch-to-first-email latency (median, p95) and the total time. ``--baseline sqlite`` runs the
same thing with PostgreSQL switched off, so the two backends can be compared side by side.

Usage (from the project root, venv active)::

    python bench/launch_50.py                     # embedded PostgreSQL (the default stack)
    python bench/launch_50.py --baseline sqlite   # Prefect and the registry on SQLite
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import StateType
from sqlalchemy import select

from registry import accounts, calendar
from registry.db import Database
from registry.loader import load_registry, load_sample
from registry.models import Staff
from yeongye import prefect_api, steering
from yeongye.mailcapture import read_captured
from yeongye.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 180.0
STOP_TIMEOUT = 120.0
POLL_SECONDS = 2.0
COMPLEXES = "ABCDEF"
DEPLOYMENT = steering.deployment_name("hoarding")
DEFAULT_WORKER_LIMIT = int(Settings.model_fields["worker_limit"].default)

# Flow-run states that will never reach "Paused" on their own: each counts as an error.
BAD_STATES = {StateType.FAILED, StateType.CRASHED, StateType.CANCELLED, StateType.CANCELLING, StateType.COMPLETED}


# --------------------------------------------------------------------------------------------
# The stack subprocess


@dataclass
class Stack:
    """A running ``python -m yeongye.stack`` and where to reach it."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    output: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return str(self.info["prefect_api_url"])

    @property
    def mail_dir(self) -> Path:
        return Path(self.info.get("mail_dir") or self.data_dir / "mail")

    @property
    def settings(self) -> Settings:
        """Where the stack keeps its Prefect API auth string (``yeongye.prefect_api``)."""
        return Settings(data_dir=self.data_dir)

    def auth(self) -> tuple[str, str]:
        """The stack's Prefect API user and password, for plain HTTP calls; KeyError before it made them."""
        value = prefect_api.auth_string(self.settings)
        if value is None:
            raise KeyError("prefect-auth")
        user, _, password = value.partition(":")
        return user, password

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.output.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no output)"


class StackStartError(RuntimeError):
    """The stack did not become ready; the message carries the tail of its output."""


def free_port() -> int:
    """A port free right now on loopback; the stack binds it a few seconds later (small race, fine here)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stack_env(data_dir: Path, *, postgres: bool, worker_limit: int) -> dict[str, str]:
    """Environment for the stack: ours minus any YEONGYE_/PREFECT_ settings, so nothing leaks in
    from the developer's shell (an API URL, a database URL) and both backends start from the same
    defaults except the one switch being compared."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YEONGYE_", "PREFECT_"))}
    env.update(
        YEONGYE_DATA_DIR=str(data_dir),
        YEONGYE_PREFECT_PORT=str(free_port()),
        YEONGYE_SMTP_PORT=str(free_port()),
        YEONGYE_ANSWER_PORT=str(free_port()),
        YEONGYE_EMBEDDED_POSTGRES="true" if postgres else "false",
        YEONGYE_SMTP_CAPTURE="true",
        YEONGYE_WORKER_LIMIT=str(worker_limit),
    )
    return env


def start_stack(data_dir: Path, env: dict[str, str]) -> Stack:
    """Start the stack in its own session, so a Ctrl-C in our terminal reaches only us and the
    stack is stopped by our ``finally`` (one SIGTERM, in the order the stack itself controls)."""
    output = data_dir / "stack.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "yeongye.stack"],
            env=env,
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Stack(proc=proc, data_dir=data_dir, output=output)


def wait_ready(stack: Stack, timeout: float = READY_TIMEOUT) -> None:
    """Poll until stack.json exists, the API answers /health and the deployment is registered.

    stack.json is written last by the stack, but the deployment is still checked explicitly:
    launching against a missing deployment would show up as 50 launch errors, not as "not ready".
    The API answers only with the stack's auth string.
    """
    deadline = time.monotonic() + timeout
    stack_file = stack.data_dir / "stack.json"
    with httpx.Client(timeout=5.0) as client:
        while True:
            if stack.proc.poll() is not None:
                raise StackStartError(f"stack exited early (code {stack.proc.returncode}):\n{stack.tail()}")
            with contextlib.suppress(FileNotFoundError, ValueError, KeyError, httpx.HTTPError):
                stack.info = json.loads(stack_file.read_text())
                api, auth = stack.api_url, stack.auth()
                if (
                    client.get(f"{api}/health", auth=auth).status_code == 200
                    and client.get(f"{api}/deployments/name/{DEPLOYMENT}", auth=auth).status_code == 200
                ):
                    return
            if time.monotonic() > deadline:
                raise StackStartError(f"stack not ready within {timeout:.0f} s:\n{stack.tail()}")
            time.sleep(0.5)


def stop_stack(stack: Stack) -> float:
    """SIGTERM and wait: the stack stops its own children (flow runs, worker, server, PostgreSQL)."""
    started = time.monotonic()
    if stack.proc.poll() is None:
        stack.proc.send_signal(signal.SIGTERM)
        try:
            stack.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(
                f"warning: stack did not stop within {STOP_TIMEOUT:.0f} s, killing pid {stack.proc.pid}",
                file=sys.stderr,
            )
            stack.proc.kill()
            stack.proc.wait(timeout=10)
    return time.monotonic() - started


# --------------------------------------------------------------------------------------------
# Registry


_SURNAMES = "김이박최정강조윤장임한오서신권황안송류홍"
_GIVEN = ["가온", "나래", "다온", "라희", "마루", "바다", "사랑", "아라", "자람", "하늘", "한결", "새봄"]


def bench_residents(count: int) -> list[dict[str, Any]]:
    """``count`` fictional residents spread round-robin over complexes A-F.

    One per case, because a resident may have only one open hoarding case at a time. Names,
    phones and units are made up (010-0001-xxxx is not a real number range in use here).
    """
    residents = []
    for number in range(1, count + 1):
        complex_code = COMPLEXES[(number - 1) % len(COMPLEXES)]
        residents.append(
            {
                "ref": f"R-{complex_code}-B{number:03d}",
                "complex_code": complex_code,
                "name": _SURNAMES[number % len(_SURNAMES)] + _GIVEN[number % len(_GIVEN)],
                "phone": f"010-0001-{number:04d}",
                "building": f"{101 + number % 5}동",
                "unit": f"{1 + number % 15}0{1 + number % 4}호",
                "birth_year": 1935 + number % 40,
                "lives_alone": number % 3 != 0,
            }
        )
    return residents


def load_bench_registry(database_url: str, residents: list[dict[str, Any]]) -> None:
    """Sample registry first (centres, agencies, complexes, staff with the demo password), then
    the bench residents on top."""
    db = Database(database_url)
    try:
        load_sample(db, actor="bench")
        load_registry(db, {"residents": residents}, actor="bench")
    finally:
        db.dispose()


def log_in_coordinators(database_url: str) -> dict[str, str]:
    """A session token of each complex's coordinator (``yeongye login`` with the demo password),
    by complex code: the launches below act as them, as ``yeongye launch`` does."""
    db = Database(database_url)
    tokens: dict[str, str] = {}
    try:
        with db.transaction() as session:
            coordinators = session.execute(
                select(Staff.complex_code, Staff.id).where(Staff.role == "coordinator").order_by(Staff.id)
            ).all()
        hours = Settings.model_fields["session_hours"].default
        for complex_code, staff_id in coordinators:
            if complex_code is None or complex_code in tokens:
                continue
            with db.transaction() as session:
                token = accounts.log_in(
                    session, staff_id, accounts.DEMO_PASSWORD, now=calendar.SystemClock().now(), hours=hours
                )
            if token is None:
                raise RuntimeError(f"{staff_id} cannot log in with the demo password")
            tokens[complex_code] = token
    finally:
        db.dispose()
    return tokens


# --------------------------------------------------------------------------------------------
# Launching


@dataclass
class LaunchResult:
    resident_ref: str
    started_at: float  # wall clock (time.time()), comparable with captured mail timestamps
    ended_at: float = 0.0
    case_ref: str | None = None
    flow_run_id: str | None = None
    error: str | None = None


def launch_all(stack: Stack, residents: list[dict[str, Any]], tokens: dict[str, str]) -> list[LaunchResult]:
    """Launch one case per resident, all threads released by a barrier at the same instant.

    Each thread has its own Database (engine and pool), like N caseworkers each running
    ``yeongye launch``; a shared pool of 10 connections would queue the launches and hide the
    concurrency being measured. Like the command, each launch first finds who its session token
    (``tokens``, by complex) belongs to, and launches as them. The Prefect client is pointed at
    the stack (with its auth string) per thread, because temporary_settings lives in a context
    variable that pool threads do not inherit.
    """
    barrier = threading.Barrier(len(residents))
    database_url, api_url, settings = stack.info["database_url"], stack.api_url, stack.settings

    def one(resident: dict[str, Any]) -> LaunchResult:
        db = Database(database_url)
        try:
            barrier.wait()
            result = LaunchResult(resident_ref=resident["ref"], started_at=time.time())
            try:
                with db.transaction() as session:
                    who = accounts.authenticate(
                        session, tokens[resident["complex_code"]], now=calendar.SystemClock().now()
                    )
                with prefect_api.connected(settings, api_url):
                    launched = steering.launch(
                        db,
                        intervention="hoarding",
                        complex_code=resident["complex_code"],
                        resident_ref=resident["ref"],
                        by=who,
                    )
                result.case_ref, result.flow_run_id = launched.case_ref, launched.flow_run_id
            except Exception as error:  # every failure is a data point, never a bench crash
                result.error = f"{type(error).__name__}: {_first_line(error)}"
            result.ended_at = time.time()
            return result
        finally:
            db.dispose()

    with ThreadPoolExecutor(max_workers=len(residents), thread_name_prefix="launch") as pool:
        return list(pool.map(one, residents))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else repr(error)


# --------------------------------------------------------------------------------------------
# Waiting for mail and suspended runs


@dataclass
class Observation:
    first_email: dict[str, float] = field(default_factory=dict)  # case ref -> wall clock
    run_states: dict[str, str] = field(default_factory=dict)  # flow run id -> state name
    run_types: dict[str, StateType] = field(default_factory=dict)
    poll_errors: Counter[str] = field(default_factory=Counter)
    timed_out: bool = False


def first_emails(mail_dir: Path) -> dict[str, float]:
    """Earliest received_at per X-Yeongye-Case, as a wall-clock timestamp."""
    first: dict[str, float] = {}
    for mail in read_captured(mail_dir):
        case = mail.headers.get("X-Yeongye-Case")
        if case:
            stamp = mail.received_at.timestamp()
            first[case] = min(stamp, first.get(case, stamp))
    return first


def read_states(stack: Stack, flow_run_ids: list[str]) -> dict[str, tuple[StateType | None, str]]:
    """Current state (type, name) of each flow run, in one API call."""
    with prefect_api.connected(stack.settings, stack.api_url), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(i) for i in flow_run_ids])),
            limit=len(flow_run_ids),
        )
    return {str(r.id): (r.state.type if r.state else None, (r.state.name if r.state else None) or "None") for r in runs}


def wait_until_settled(stack: Stack, launched: list[LaunchResult], timeout: float) -> Observation:
    """Poll until every launched case has an email and a Paused run, or nothing can change any more.

    A run that failed or crashed will never pause, so waiting for the full timeout would only
    delay the report: the loop also ends once every run is Paused or in a final state and every
    Paused run's case has its email. Errors from the API while polling (SQLite answers 503 under
    load) are counted and retried, not fatal.
    """
    observation = Observation()
    ids = [r.flow_run_id for r in launched if r.flow_run_id]
    cases = {r.case_ref for r in launched if r.case_ref}
    by_run = {r.flow_run_id: r.case_ref for r in launched if r.flow_run_id}
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while True:
        try:
            observation.first_email = first_emails(stack.mail_dir)
        except Exception as error:  # a half-written directory listing etc.; try again next round
            observation.poll_errors[f"mail: {type(error).__name__}"] += 1
        if ids:
            try:
                for run_id, (state_type, name) in read_states(stack, ids).items():
                    observation.run_states[run_id] = name
                    if state_type is not None:
                        observation.run_types[run_id] = state_type
            except Exception as error:
                observation.poll_errors[f"api: {type(error).__name__}: {_first_line(error)[:120]}"] += 1

        paused = {i for i in ids if observation.run_types.get(i) == StateType.PAUSED}
        final = {i for i in ids if observation.run_types.get(i) in BAD_STATES}
        mailed = cases & observation.first_email.keys()
        settled = len(paused | final) == len(ids) and all(by_run[i] in mailed for i in paused)
        if settled:
            return observation
        if stack.proc.poll() is not None:
            print(f"stack exited while waiting (code {stack.proc.returncode}):\n{stack.tail()}", file=sys.stderr)
            observation.timed_out = True
            return observation
        if time.monotonic() > deadline:
            observation.timed_out = True
            return observation
        if time.monotonic() - last_report > 15:
            last_report = time.monotonic()
            states = Counter(observation.run_states.get(i, "?") for i in ids)
            print(f"  waiting: {len(mailed)}/{len(cases)} cases mailed, runs {dict(states)}", flush=True)
        time.sleep(POLL_SECONDS)


# --------------------------------------------------------------------------------------------
# Report


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: with 50 samples p95 is the 48th smallest, an observed value."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def build_report(
    backend: str,
    worker_limit: int,
    requested: int,
    launched: list[LaunchResult],
    observation: Observation,
    stack_ready_s: float,
) -> dict[str, Any]:
    """Everything the bench found, as one flat dict (printed as text and as one JSON line)."""
    ok = [r for r in launched if r.case_ref and r.flow_run_id]
    launch_errors = [r for r in launched if r.error]
    run_types = {r.flow_run_id: observation.run_types.get(r.flow_run_id) for r in ok if r.flow_run_id}
    bad_runs = {i: observation.run_states.get(i, "?") for i, kind in run_types.items() if kind in BAD_STATES}
    not_paused = {
        i: observation.run_states.get(i, "unknown")
        for i, kind in run_types.items()
        if kind not in BAD_STATES and kind != StateType.PAUSED
    }
    # Launch start and first email, both wall clock, per case that sent something.
    mailed = [(r.started_at, observation.first_email[r.case_ref]) for r in ok if r.case_ref in observation.first_email]
    no_email = sorted(str(r.case_ref) for r in ok if r.case_ref not in observation.first_email)
    latencies = [email - start for start, email in mailed]
    first_launch = min((r.started_at for r in launched), default=0.0)
    last_email = max((email for _, email in mailed), default=None)
    launch_durations = [r.ended_at - r.started_at for r in launched]
    return {
        "backend": backend,
        "worker_limit": worker_limit,
        "cases_requested": requested,
        "cases_launched": len(ok),
        # As briefed: launch exceptions + failed/crashed runs + launched cases without an email.
        # One broken case can count twice (its run crashed and it sent nothing); see the breakdown.
        "errors": len(launch_errors) + len(bad_runs) + len(no_email),
        "launch_errors": len(launch_errors),
        "failed_runs": len(bad_runs),
        "cases_without_email": len(no_email),
        "runs_not_paused_at_end": len(not_paused),
        "timed_out": observation.timed_out,
        "latency_median_s": round(statistics.median(latencies), 2) if latencies else None,
        "latency_p95_s": round(percentile(latencies, 95), 2) if latencies else None,
        "total_s": round(last_email - first_launch, 2) if last_email is not None else None,
        "launch_call_median_s": round(statistics.median(launch_durations), 2) if launch_durations else None,
        "launch_call_max_s": round(max(launch_durations), 2) if launch_durations else None,
        "stack_ready_s": round(stack_ready_s, 1),
        "launch_error_kinds": dict(Counter(r.error for r in launch_errors if r.error).most_common(5)),
        "failed_run_states": dict(Counter(bad_runs.values())),
        "not_paused_states": dict(Counter(not_paused.values())),
        "api_poll_errors": sum(observation.poll_errors.values()),
    }


def print_report(report: dict[str, Any]) -> None:
    print()
    print(f"backend:                     {report['backend']}")
    print(f"worker limit:                {report['worker_limit']}")
    print(f"cases launched:              {report['cases_launched']} / {report['cases_requested']}")
    print(
        f"errors:                      {report['errors']}  (launch {report['launch_errors']}, "
        f"failed/crashed runs {report['failed_runs']}, cases without email {report['cases_without_email']})"
    )
    print(f"runs not paused at end:      {report['runs_not_paused_at_end']}  {report['not_paused_states'] or ''}")
    print(f"timed out:                   {report['timed_out']}")
    print(f"launch -> first email:       median {report['latency_median_s']} s, p95 {report['latency_p95_s']} s")
    print(f"first launch -> last email:  {report['total_s']} s")
    print(
        f"launch() call:               median {report['launch_call_median_s']} s, max {report['launch_call_max_s']} s"
    )
    if report["launch_error_kinds"]:
        print("launch errors by kind:")
        for kind, count in report["launch_error_kinds"].items():
            print(f"  {count:3d} x {kind}")
    if report["failed_run_states"]:
        print(f"failed run states:           {report['failed_run_states']}")
    print(json.dumps(report, ensure_ascii=False, sort_keys=False))


# --------------------------------------------------------------------------------------------
# Main


@contextlib.contextmanager
def temp_data_dir(keep: bool) -> Iterator[Path]:
    """A data dir under /tmp, outside pytest's basetemp.

    Run as root, embedded_postgres runs PostgreSQL as another system user and opens up the
    parent directories for it; pytest resets /tmp/pytest-of-root to 0700 whenever a session
    starts, which would break PostgreSQL mid-run. A plain mkdtemp avoids that.
    """
    path = Path(tempfile.mkdtemp(prefix="yeongye-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"data dir kept: {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=50, help="cases launched at once (default 50)")
    parser.add_argument(
        "--worker-limit",
        type=int,
        default=DEFAULT_WORKER_LIMIT,
        help=f"YEONGYE_WORKER_LIMIT for the stack (default {DEFAULT_WORKER_LIMIT})",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for emails and suspended runs (default 600)"
    )
    parser.add_argument(
        "--baseline",
        choices=["sqlite"],
        default=None,
        help="run Prefect and the registry on SQLite instead of embedded PostgreSQL",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs) for inspection")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    postgres = args.baseline is None
    backend = "postgresql (embedded)" if postgres else "sqlite (baseline)"
    wall = time.monotonic()
    report: dict[str, Any] | None = None
    print(f"backend: {backend}, cases: {args.cases}, worker limit: {args.worker_limit}", flush=True)
    with temp_data_dir(args.keep) as data_dir:
        stack = start_stack(data_dir, stack_env(data_dir, postgres=postgres, worker_limit=args.worker_limit))
        try:
            try:
                wait_ready(stack)
            except StackStartError as error:
                print(f"stack failed to start: {error}", file=sys.stderr)
                return 2
            stack_ready_s = time.monotonic() - wall
            print(f"stack ready in {stack_ready_s:.1f} s: {stack.api_url}", flush=True)

            residents = bench_residents(args.cases)
            load_bench_registry(stack.info["database_url"], residents)
            tokens = log_in_coordinators(stack.info["database_url"])
            print(
                f"registry loaded: sample + {len(residents)} bench residents; {len(tokens)} coordinators logged in",
                flush=True,
            )

            launched = launch_all(stack, residents, tokens)
            ok = sum(1 for r in launched if r.case_ref)
            span = max(r.ended_at for r in launched) - min(r.started_at for r in launched)
            print(f"launched {ok}/{len(launched)} in {span:.1f} s", flush=True)

            observation = wait_until_settled(stack, [r for r in launched if r.case_ref], args.timeout)
            report = build_report(backend, args.worker_limit, args.cases, launched, observation, stack_ready_s)
            print_report(report)
        except Exception:
            traceback.print_exc()
            print(f"--- stack output ---\n{stack.tail()}", file=sys.stderr)
            return 2
        finally:
            stopped = stop_stack(stack)
            print(
                f"stack stopped in {stopped:.1f} s (exit code {stack.proc.returncode}); "
                f"bench wall time {time.monotonic() - wall:.1f} s",
                flush=True,
            )
    # Errors are the finding of a baseline run, not a failure of the bench; on the default
    # (PostgreSQL) stack they mean the stack cannot take N launches at once.
    if report is not None and report["errors"] and postgres:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
