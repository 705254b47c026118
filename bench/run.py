#!/usr/bin/env python
"""The speed goals of issue 13, measured on this machine against the design before it, in one run.

Two stacks are started one after the other, on throwaway data dirs, the same way ``yeongye up``
starts them:
- **before**: Prefect's own process executor (two fresh interpreters per execution), the worker
  asking for work every 2 s;
- **after**: the warm fork executor (``yeongye.forkserver``), asking every 0.5 s.
On each, the bench launches hoarding cases one at a time as their coordinator and measures
launch → first agency email; answers each case's first step (both agencies, through steering as
``yeongye respond`` does) and measures the last answer → the next stage's email; then launches a
burst of cases at once and measures case-steps per second (a launch plus one answered step each,
counted when the next email is captured). The CLI's start (``yeongye --help``) is the same code in
both and is measured once. Figures are printed side by side with the ratio after/before; goals
this bench does not measure are named with the reason.

Usage (from the project root)::

    .venv/bin/python bench/run.py                # 8 sequential cases, a burst of 24
    .venv/bin/python bench/run.py --cases 4 --burst 12
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import launch_50 as stacks  # noqa: E402 - the stack helpers of the launch bench

from registry import accounts, calendar  # noqa: E402
from registry.access import Principal  # noqa: E402
from registry.db import Database  # noqa: E402
from tests.driving import Script, read_case, read_run  # noqa: E402
from yeongye import prefect_api, steering  # noqa: E402
from yeongye.mailcapture import read_captured  # noqa: E402

DESIGNS = {"before": {"YEONGYE_WORKER_EXECUTOR": "process", "YEONGYE_WORKER_QUERY_SECONDS": "2"}, "after": {}}
EMAIL_TIMEOUT = 120.0


@dataclass
class Figures:
    launch_to_email: list[float] = field(default_factory=list)
    answer_to_email: list[float] = field(default_factory=list)
    answer_to_next_wait: list[float] = field(default_factory=list)  # each wait of one full case, in order
    burst_steps_per_s: float = 0.0
    burst_errors: int = 0


def _emails(stack: stacks.Stack) -> list[tuple[str, float, str]]:
    """(case, received wall time, step) of every captured email."""
    found = []
    for mail in read_captured(stack.mail_dir):
        key = mail.headers.get("X-Yeongye-Key", "")
        case, _, rest = key.partition(":")
        found.append((case, mail.received_at.timestamp(), rest.partition(":")[0]))
    return found


def _first_email_after(stack: stacks.Stack, case_ref: str, since: float, not_step: str = "") -> tuple[float, str]:
    """Wall time and step of the first email of ``case_ref`` after ``since`` whose step is not ``not_step``."""
    deadline = time.monotonic() + EMAIL_TIMEOUT
    while time.monotonic() < deadline:
        found = sorted((t, step) for case, t, step in _emails(stack) if case == case_ref and step != not_step)
        if found:
            return max(found[0][0], since), found[0][1]
        time.sleep(0.05)
    raise TimeoutError(f"{case_ref}: no email within {EMAIL_TIMEOUT:.0f} s")


def _principal(db: Database, token: str) -> Principal:
    with db.transaction() as session:
        return accounts.authenticate(session, token, now=calendar.SystemClock().now())


def _launch(stack: stacks.Stack, db: Database, resident: dict[str, Any], tokens: dict[str, str]) -> str:
    with prefect_api.connected(stack.settings, stack.api_url):
        return steering.launch(
            db,
            intervention="hoarding",
            complex_code=resident["complex_code"],
            resident_ref=resident["ref"],
            by=_principal(db, tokens[resident["complex_code"]]),
        ).case_ref


def _answer_first_step(stack: stacks.Stack, db: Database, case_ref: str, token: str) -> float:
    """Both agencies of the home visit answer "completed"; returns the wall time of the last answer."""
    who = _principal(db, token)
    with prefect_api.connected(stack.settings, stack.api_url):
        wait = steering.current_wait(db, case_ref)
        for agency in wait.agencies:
            answered = time.time()
            steering.respond(db, case_ref, agency_id=agency, status="completed", reason="완료", by=who)
            if agency != wait.agencies[-1]:
                steering.current_wait(db, case_ref)  # the run takes the first answer and waits again
    return answered


def measure(design: str, cases: int, burst: int) -> Figures:
    figures = Figures()
    residents = stacks.bench_residents(cases + 1 + burst)
    with tempfile.TemporaryDirectory(prefix=f"yeongye-bench-{design}-") as tmp:
        data_dir = Path(tmp)
        env = stacks.stack_env(data_dir, postgres=True, worker_limit=8)
        env.update(DESIGNS[design])
        stack = stacks.start_stack(data_dir, env)
        try:
            stacks.wait_ready(stack)
            stacks.load_bench_registry(stack.info["database_url"], residents)
            tokens = stacks.log_in_coordinators(stack.info["database_url"])
            db = Database(stack.info["database_url"])
            try:
                for resident in residents[:cases]:
                    started = time.time()
                    case_ref = _launch(stack, db, resident, tokens)
                    emailed, step = _first_email_after(stack, case_ref, started)
                    figures.launch_to_email.append(emailed - started)
                    answered = _answer_first_step(stack, db, case_ref, tokens[resident["complex_code"]])
                    emailed, _ = _first_email_after(stack, case_ref, answered, not_step=step)
                    figures.answer_to_email.append(emailed - answered)
                    print(
                        f"  {design} {case_ref}: launch→email {figures.launch_to_email[-1]:.2f} s, "
                        f"answer→email {figures.answer_to_email[-1]:.2f} s",
                        flush=True,
                    )
                figures.answer_to_next_wait = _full_case(stack, db, residents[cases], tokens)
                figures.burst_steps_per_s, figures.burst_errors = _burst(stack, residents[cases + 1 :], tokens)
            finally:
                db.dispose()
        finally:
            stacks.stop_stack(stack)
    return figures


def _full_case(stack: stacks.Stack, db: Database, resident: dict[str, Any], tokens: dict[str, str]) -> list[float]:
    """One hoarding case answered from launch to closure as ``tests.driving.Script`` answers it; for
    each wait, the time from the answer to the run waiting again (or ending): the replay's cost."""
    case_ref = _launch(stack, db, resident, tokens)
    latencies = []
    with prefect_api.connected(stack.settings, stack.api_url):
        script = Script(db, case_ref)
        flow_run_id = read_case(db, case_ref).flow_run_id
        assert flow_run_id is not None
        for _ in range(80):
            wait = steering.current_wait(db, case_ref)
            answered = time.time()
            script.answer(wait)
            while True:
                state = read_run(flow_run_id).state
                assert state is not None
                if state.is_final() or (state.is_paused() and state.state_details.pause_key not in (None, wait.key)):
                    break
                time.sleep(0.05)
            latencies.append(time.time() - answered)
            if state.is_final():
                return latencies
    raise AssertionError(f"{case_ref} did not close")


def _burst(stack: stacks.Stack, residents: list[dict[str, Any]], tokens: dict[str, str]) -> tuple[float, int]:
    """Launch every case at once; steps/s = executions that reached their email, over the time taken."""
    started = time.time()
    launched = stacks.launch_all(stack, residents, tokens)
    errors = sum(1 for r in launched if r.error)
    refs = {r.case_ref for r in launched if r.case_ref}
    deadline = time.monotonic() + EMAIL_TIMEOUT * 3
    while time.monotonic() < deadline:
        mailed = {case for case, _, _ in _emails(stack)} & refs
        if mailed == refs:
            break
        time.sleep(0.2)
    last = max((t for case, t, _ in _emails(stack) if case in refs), default=time.time())
    mailed = {case for case, _, _ in _emails(stack)} & refs
    return len(mailed) / max(last - started, 1e-6), errors + len(refs - mailed)


def cli_start(runs: int = 5) -> float:
    """Median wall time of ``yeongye --help`` (a command that needs no Prefect)."""
    times = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run([str(Path(sys.executable).parent / "yeongye"), "--help"], capture_output=True, check=True)
        times.append(time.monotonic() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8, help="cases launched one at a time")
    parser.add_argument("--burst", type=int, default=24, help="cases launched at once")
    args = parser.parse_args()
    results = {design: measure(design, args.cases, args.burst) for design in DESIGNS}
    before, after = results["before"], results["after"]
    rows = [
        (
            "launch → first email, median (s)",
            statistics.median(before.launch_to_email),
            statistics.median(after.launch_to_email),
            "≤ 1 s",
        ),
        ("launch → first email, max (s)", max(before.launch_to_email), max(after.launch_to_email), ""),
        (
            "answer → next email, median (s)",
            statistics.median(before.answer_to_email),
            statistics.median(after.answer_to_email),
            "≤ 1 s",
        ),
        ("answer → next wait, first wait (s)", before.answer_to_next_wait[0], after.answer_to_next_wait[0], ""),
        (
            f"answer → next wait, last ({len(after.answer_to_next_wait)}th) wait (s)",
            before.answer_to_next_wait[-1],
            after.answer_to_next_wait[-1],
            "≤ 1.5× the first",
        ),
        (f"burst of {args.burst}: case-steps/s", before.burst_steps_per_s, after.burst_steps_per_s, "≥ 5× before"),
        (f"burst of {args.burst}: errors", before.burst_errors, after.burst_errors, "0"),
    ]
    print(f"\n{'figure':<36} {'before':>9} {'after':>9} {'after/before':>13}  goal")
    for name, old, new, goal in rows:
        ratio = f"{new / old:.2f}" if old else "-"
        print(f"{name:<36} {old:>9.2f} {new:>9.2f} {ratio:>13}  {goal}")
    print(f"{'CLI start, yeongye --help (s)':<36} {cli_start():>9.2f} {'(same code)':>9} {'':>13}  ≤ 0.5 s")
    print(
        "\nnot measured here: 500 and 20,000 cases at once, 10,000 waiting cases, two executors' "
        "throughput: see bench/README.md"
    )


if __name__ == "__main__":
    main()
