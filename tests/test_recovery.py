"""Recovery: a launch that crashes at any point leaves no case without a run, no run without a case,
and no case number used twice; a crashed or missing run is found and run again without sending twice.

Each crash point is reproduced as the state it leaves behind (what a kill -9 at that instant
would leave in the registry and in Prefect), then mended by the same check the stack runs every
minute and `yeongye doctor --repair` runs on demand.
"""

from __future__ import annotations

import datetime as dt
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.states import Crashed
from sqlalchemy import func, select
from typer.testing import CliRunner

from registry import cases
from registry.calendar import FixedClock, SystemClock
from registry.db import Database
from registry.models import Case, OutboxMessage
from tests.driving import coordinator_of, deploy_hoarding, read_case, read_run, run_once, signed_in, token_of
from yeongye import recovery, steering
from yeongye.cli import app
from yeongye.mailcapture import MailCapture, read_captured


def _runs_of(deployment_id: UUID, db: Database) -> int:
    """Flow runs of this registry's cases (the test server is shared by the tests of this process,
    whose registries number their cases alike), recognised by the idempotency key launch gives them."""
    with db.transaction() as session:
        keys = {f"{ref}@{opened:%Y%m%dT%H%M%S.%f}" for ref, opened in session.execute(select(Case.ref, Case.opened_at))}
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
    return sum(1 for run in runs if run.idempotency_key in keys)


def _open_case_without_run(db: Database, complex_code: str, resident_ref: str) -> str:
    """What a launch killed right after committing the case leaves behind."""
    with db.transaction() as session:
        return cases.open_case(
            session,
            intervention="hoarding",
            complex_code=complex_code,
            resident_ref=resident_ref,
            opened_at=SystemClock().now(),
            by=f"coord-{complex_code.lower()}",  # the complex's coordinator, as a launch names them
        ).ref


def test_a_launch_crashing_at_each_point_leaves_every_case_with_exactly_one_run(
    prefect_server: None, registry: Database, mail: MailCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment_id = deploy_hoarding()
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "admin-central"))  # doctor looks at every centre

    # 1. Before the commit: bad input opens nothing.
    with pytest.raises(cases.CaseError):
        steering.launch(
            registry,
            intervention="hoarding",
            complex_code="Z",
            resident_ref="R-A-001",
            by=coordinator_of(registry, "A"),
        )
    # 2. After the commit, before Prefect was called.
    committed = _open_case_without_run(registry, "A", "R-A-001")
    # 3. After Prefect created the run (or the client timed out waiting for its answer), before attaching it.
    timed_out = _open_case_without_run(registry, "B", "R-B-001")
    opened_at = read_case(registry, timed_out).opened_at
    with get_client(sync_client=True) as client:
        orphan = client.create_flow_run_from_deployment(
            deployment_id,
            parameters={"case_ref": timed_out},
            idempotency_key=f"{timed_out}@{opened_at:%Y%m%dT%H%M%S.%f}",  # as steering.start_run keys it
        )

    assert CliRunner().invoke(app, ["doctor"]).exit_code == 0  # a launch still under way is left alone ...
    later = FixedClock(SystemClock().now() + recovery.LAUNCH_GRACE + dt.timedelta(seconds=1))
    # ... a minute later the case counts as stuck.
    findings = {f.case_ref: (f.problem, f.action) for f in recovery.examine(registry, repair=False, clock=later)}
    assert findings == {committed: ("no-run", "repairable"), timed_out: ("no-run", "repairable")}
    repaired = recovery.examine(registry, repair=True, clock=later)
    assert {f.action for f in repaired} == {"repaired"}
    assert recovery.examine(registry, repair=False, clock=later) == []

    assert read_case(registry, timed_out).flow_run_id == str(orphan.id)  # the orphan run, not a second one
    assert read_case(registry, committed).flow_run_id
    assert _runs_of(deployment_id, registry) == 2

    # Launching again after all that: a new number, above every number handed out before.
    newest = steering.launch(
        registry, intervention="hoarding", complex_code="C", resident_ref="R-C-001", by=coordinator_of(registry, "C")
    )
    with registry.transaction() as session:
        refs = session.scalars(select(Case.ref).order_by(Case.id)).all()
        assert session.scalar(select(func.count()).select_from(Case).where(Case.flow_run_id.is_(None))) == 0
    assert refs == [committed, timed_out, newest.case_ref] and len(set(refs)) == 3
    assert _runs_of(deployment_id, registry) == 3

    # The repaired runs do the work: each case's first agency emails go out, once.
    for ref in (committed, timed_out):
        run_once(read_case(registry, ref).flow_run_id or "")
    keys = [m.headers["X-Yeongye-Key"] for m in read_captured(mail.mail_dir)]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 4  # two agencies per case, nothing twice


def test_a_crashed_run_is_run_again_and_sends_nothing_twice_a_deleted_one_is_left_to_a_person(
    prefect_server: None, registry: Database, mail: MailCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy_hoarding()
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "admin-central"))  # doctor mends every centre's runs
    crashed = steering.launch(
        registry, intervention="hoarding", complex_code="D", resident_ref="R-D-001", by=coordinator_of(registry, "D")
    )
    deleted = steering.launch(
        registry, intervention="hoarding", complex_code="E", resident_ref="R-E-001", by=coordinator_of(registry, "E")
    )
    for launched in (crashed, deleted):
        assert run_once(launched.flow_run_id).state.is_paused()  # type: ignore[union-attr]
    # One agency answers; the worker's process running the resumed case is killed mid-step.
    wait = steering.current_wait(registry, crashed.case_ref)
    steering.respond(
        registry,
        crashed.case_ref,
        agency_id=wait.agencies[0],
        status="completed",
        reason="완료",
        by=signed_in(registry, "coord-d"),
    )
    sent_before = len(read_captured(mail.mail_dir))
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(crashed.flow_run_id), Crashed(message="process killed"), force=True)
        client.delete_flow_run(UUID(deleted.flow_run_id))

    # The worker's late second crash report must land first: a crash is mended once it settled.
    assert [f.problem for f in recovery.examine(registry, repair=True)] == ["run-missing"]
    settled = FixedClock(SystemClock().now() + recovery.CRASH_SETTLE + dt.timedelta(seconds=1))
    assert {(f.case_ref, f.problem, f.action) for f in recovery.examine(registry, repair=True, clock=settled)} == {
        (crashed.case_ref, "crashed", "repaired"),
        # Its answers lived in the deleted run: a new run would ask the agencies again. A person decides.
        (deleted.case_ref, "run-missing", "person"),
    }
    assert read_run(crashed.flow_run_id).state.name == "Recovering"  # type: ignore[union-attr]
    assert read_case(registry, deleted.case_ref).flow_run_id == deleted.flow_run_id

    assert run_once(crashed.flow_run_id).state.is_paused()  # type: ignore[union-attr]
    assert [f.case_ref for f in recovery.examine(registry, repair=False)] == [deleted.case_ref]
    doctor = CliRunner().invoke(app, ["doctor", "--repair"])
    assert doctor.exit_code == 1 and deleted.case_ref in doctor.output and "사람의 판단 필요" in doctor.output
    # The crashed run replayed its steps, took the answer given before the crash, and sent nothing twice.
    assert len(read_captured(mail.mail_dir)) == sent_before
    assert steering.current_wait(registry, crashed.case_ref).agencies == wait.agencies[1:]
    with registry.transaction() as session:
        assert set(session.scalars(select(OutboxMessage.status))) == {"sent"}
