"""Fault injection on the running stack: nothing lost, stuck or sent twice.

One real stack (embedded PostgreSQL, Prefect server, worker, outbox relay, case recovery) and an
SMTP capture of the test's own, so the mail server can go down and come back. Then, in order:

1. **kill -9 at every task boundary.** A calibration case counts the task completions of its
   first two executions (launch → first agency answer wait, first answer → second answer wait).
   For each boundary k one more case is launched whose flow-run process SIGKILLs itself right
   after its kth task (``tasks.failpoints``). The worker marks the run Crashed; the stack's
   recovery runs it again. Every case is driven to the home-visit findings its coordinator confirms.
2. **SMTP down for five minutes** from before those launches until every case waits for its coordinator:
   no flow run fails, and once the server is back every message arrives exactly once.
3. **The Prefect server killed** (kill -9) with every case waiting: the stack restarts it.
4. **The worker killed while ten cases resume**: all reach their next wait, then the rest too.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from registry import outbox
from registry.access import Principal
from registry.db import Database
from registry.loader import load_registry, load_sample
from registry.models import OutboxMessage
from tests.driving import coordinator_of, read_case, signed_in
from tests.stackrun import free_port, kill_worker_and_wait_for_the_new_one, prefect_http, start, stop, wait_ready
from yeongye import prefect_api, recovery, steering
from yeongye.mailcapture import MailCapture, read_captured
from yeongye.settings import Settings

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(1800)]

OUTAGE_SECONDS = 300
WAITING = 20  # cases waiting when the Prefect server is killed
CALIBRATION_PLAN = 1_000_000  # never reached: counts the boundaries without crashing


def _residents(count: int) -> list[dict[str, object]]:
    """More residents of complex A, one per crash case (the sample has 18)."""
    return [
        {
            "ref": f"R-A-{100 + n}",
            "complex_code": "A",
            "name": f"시험{n}",
            "phone": f"010-0000-{2000 + n}",
            "building": "101동",
            "unit": f"{100 + n}호",
            "birth_year": 1950,
            "lives_alone": True,
        }
        for n in range(count)
    ]


# Where every case of this test is brought: the coordinator confirms what the home visit found.
HOME_VISIT = "decision-home-visit"


def _waiting_at(refs: Iterable[str], db: Database, prefix: str) -> set[str]:
    """The cases whose flow run is suspended on a wait whose key starts with ``prefix``."""
    runs: dict[str, str] = {}
    for ref in refs:
        with db.transaction() as session:
            from registry import cases

            run = cases.find_case(session, ref).flow_run_id
        if run:
            runs[run] = ref
    with get_client(sync_client=True) as client:
        found = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(r) for r in runs])), limit=len(runs)
        )
    return {
        runs[str(run.id)]
        for run in found
        if run.state and run.state.is_paused() and (run.state.state_details.pause_key or "").startswith(prefix)
    }


def _wait_until_all_at(refs: list[str], db: Database, prefix: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while (done := _waiting_at(refs, db, prefix)) != set(refs):
        assert time.monotonic() < deadline, f"not at {prefix}: {sorted(set(refs) - done)}"
        time.sleep(2)


def _coordinator(db: Database, ref: str) -> Principal:
    """The case's coordinator, logged in: who records agencies' answers and confirms the home visit."""
    return signed_in(db, read_case(db, ref).coordinator_id)


def _answer_one(db: Database, ref: str) -> None:
    """The first agency the case waits for reports done (by phone; the coordinator records it)."""
    wait = steering.current_wait(db, ref)
    steering.respond(db, ref, agency_id=wait.agencies[0], status="completed", reason="완료", by=_coordinator(db, ref))


def _remaining(plans: Path, ref: str) -> int:
    return int((plans / ref).read_text())


def _failed_runs(api: httpx.Client) -> list[str]:
    body = {"flow_runs": {"state": {"type": {"any_": ["FAILED"]}}}}
    return [run["name"] for run in api.post("/flow_runs/filter", json=body).json()]


def test_kill_smtp_outage_server_and_worker_restarts(stack_dir: Path) -> None:
    data_dir = stack_dir
    prefect_port, smtp_port = free_port(), free_port()
    plans = data_dir / "failpoints"
    plans.mkdir()
    mail_dir = data_dir / "captured"
    capture = MailCapture(mail_dir, smtp_port)
    capture.start()
    extra = {
        "YEONGYE_SMTP_CAPTURE": "false",
        "YEONGYE_FAILPOINTS_DIR": str(plans),
        "YEONGYE_RECOVERY_INTERVAL": "3",
        "YEONGYE_OUTBOX_MAX_BACKOFF": "15",
        "YEONGYE_RELAY_INTERVAL": "0.5",
    }
    output = data_dir / "up.out"
    proc = start(data_dir, prefect_port, smtp_port, output, extra)
    try:
        info = wait_ready(proc, data_dir, output)
        api = prefect_http(data_dir)
        db = Database(info["database_url"])
        with prefect_api.connected(Settings(data_dir=data_dir), info["prefect_api_url"]):
            load_sample(db, actor="test-setup")

            # Calibration: how many task boundaries do the first two executions of a case have?
            calibration = steering.launch(
                db, intervention="hoarding", complex_code="B", resident_ref="R-B-001", by=coordinator_of(db, "B")
            )
            (plans / calibration.case_ref).write_text(str(CALIBRATION_PLAN))
            _wait_until_all_at([calibration.case_ref], db, "answer-assessment-1")
            first = CALIBRATION_PLAN - _remaining(plans, calibration.case_ref)
            _answer_one(db, calibration.case_ref)
            _wait_until_all_at([calibration.case_ref], db, "answer-assessment-2")
            second = CALIBRATION_PLAN - _remaining(plans, calibration.case_ref) - first
            assert first >= 5 and second >= first, (first, second)
            boundaries = first + second
            load_registry(db, {"residents": _residents(boundaries)}, actor="test-setup")

            # The mail server goes down; one case per boundary is launched and crashes there.
            capture.stop()
            down_at = time.monotonic()
            crashing: dict[str, int] = {}
            coord_a = coordinator_of(db, "A")
            for k, resident in enumerate(_residents(boundaries), start=1):
                launched = steering.launch(
                    db, intervention="hoarding", complex_code="A", resident_ref=str(resident["ref"]), by=coord_a
                )
                (plans / launched.case_ref).write_text(str(k))
                crashing[launched.case_ref] = k
            # Cases that do not crash, so that twenty wait when the server and the worker are killed.
            for resident in ("R-C-001", "R-D-001")[: max(0, WAITING - 1 - len(crashing))]:
                launched = steering.launch(
                    db,
                    intervention="hoarding",
                    complex_code=resident[2],
                    resident_ref=resident,
                    by=coordinator_of(db, resident[2]),
                )
                crashing[launched.case_ref] = 0
            refs = list(crashing)
            _wait_until_all_at(refs, db, "answer-assessment-1")
            for ref in refs:
                _answer_one(db, ref)
            _wait_until_all_at(refs, db, "answer-assessment-2")
            for ref in [*refs, calibration.case_ref]:
                _answer_one(db, ref)
            everyone = [*refs, calibration.case_ref]
            _wait_until_all_at(everyone, db, HOME_VISIT)
            fired = sorted(p.stem for p in plans.glob("*.fired"))
            assert fired == sorted(ref for ref, k in crashing.items() if k), "every planned crash happened"
            assert _failed_runs(api) == []

            # The mail server comes back after five minutes: everything arrives, once.
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
            with db.transaction() as session:
                assert len(outbox.listing(session, "pending")) >= 3 * len(refs)  # nothing could be sent
            capture = MailCapture(mail_dir, smtp_port)
            capture.start()
            deadline = time.monotonic() + 180
            while True:
                with db.transaction() as session:
                    unsent = outbox.listing(session)
                if not unsent:
                    break
                assert time.monotonic() < deadline, unsent[:3]
                time.sleep(1)
            keys = Counter(m.headers["X-Yeongye-Key"] for m in read_captured(mail_dir))
            with db.transaction() as session:
                stored = {m.idempotency_key for m in session.query(OutboxMessage)}
            assert set(keys) == stored and max(keys.values()) == 1
            for ref in everyone:  # two agencies asked, and the coordinator asked to confirm the home visit
                assert sum(1 for key in keys if key.startswith(f"{ref}:")) >= 3, ref

            # The Prefect server dies with every case waiting: the stack brings it back.
            children = json.loads((data_dir / "stack-children.json").read_text())
            server_pid = next(int(row["pid"]) for row in children if row["name"] == "Prefect server")
            os.kill(server_pid, signal.SIGKILL)
            deadline = time.monotonic() + 120
            while True:
                try:
                    if api.get("/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the Prefect server did not come back"
                time.sleep(1)
            assert _waiting_at(everyone, db, HOME_VISIT) == set(everyone)

            # Ten cases resume and the worker is killed meanwhile: all of them get on, then the rest.
            # Each case's coordinator confirms the home visit (nothing of concern recorded).
            for ref in everyone[:10]:
                steering.approve(db, ref, approved=True, by=_coordinator(db, ref))
            kill_worker_and_wait_for_the_new_one(api, data_dir)
            _wait_until_all_at(everyone[:10], db, "consent")
            for ref in everyone[10:]:
                steering.approve(db, ref, approved=True, by=_coordinator(db, ref))
            _wait_until_all_at(everyone, db, "consent")
            assert _failed_runs(api) == []
            assert recovery.examine(db, repair=False) == []
        db.dispose()
    finally:
        stop(proc, data_dir, output)
        capture.stop()
