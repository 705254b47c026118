"""The detection sweep (위기가구 발굴): a management-office risk-signal file in, outreach cases out.

Runs on a schedule (the deployment in prefect.yaml) and on demand (``yeongye sweep FILE`` runs the
same import in-process). Prefect sees only the file's path, case references and counts per
complex: the rows are read, checked and stored by registry/detection.py inside the registry.
A malformed file fails the run with every problem listed, and nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact

from registry import detection
from tasks import runtime
from yeongye import steering


@task(name="import-and-flag")
def import_and_flag(path: str) -> dict[str, Any]:
    """Import, flag and open outreach cases in one transaction; counts per complex only."""
    report = detection.sweep(runtime.database(), Path(path), now=runtime.clock().now())
    return {"sweep_id": report.sweep_id, "table": report.table(), "new_cases": report.new_case_refs}


@task(name="launch-outreach")
def launch_outreach() -> dict[str, Any]:
    """Start the outreach flow run of every case still without one (this sweep's and any left pending)."""
    result = steering.launch_pending_outreach(runtime.database())
    return {"launched": result.launched, "pending": result.pending, "reason": result.reason}


@flow(name="detection-sweep", flow_run_name="detection-sweep 위기가구 발굴", persist_result=True)
def detection_sweep(path: str) -> dict[str, Any]:
    """Sweep the file at ``path``; returns the sweep id, cases opened, launched and pending."""
    imported = import_and_flag(path)
    launched = launch_outreach()
    create_table_artifact(
        key="detection-sweep",
        table=imported["table"],
        description=(
            f"위기가구 발굴 (detection sweep) #{imported['sweep_id']}: 단지별 세대·규칙별 위기 신호·신규 사례 "
            f"(counts only). outreach flow 시작 {len(launched['launched'])}건, "
            f"대기 (launch pending) {len(launched['pending'])}건 {launched['reason']}"
        ),
    )
    return {
        "sweep_id": imported["sweep_id"],
        "new_cases": len(imported["new_cases"]),
        "launched": len(launched["launched"]),
        "launch_pending": len(launched["pending"]),
    }
