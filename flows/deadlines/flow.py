"""The deadline sweep: every 15 minutes of every day, move each unanswered handoff and decision up its ladder.

reminder (before due) → coordinator → supervisor → timed-out (handoffs only: the waiting case gets
a "timed-out" answer and its own flow decides what comes next). Life-safety clocks (no sign of life
from a resident) count hours, nights and holidays included, hence the short period; legal clocks
(e.g. a 3-day emergency hold) run on weekends too. The rules and times live in
registry/escalation.py; each rung is one task (tasks/escalation.py).
"""

from __future__ import annotations

from collections import Counter

from prefect import flow
from prefect.artifacts import create_table_artifact

from tasks.escalation import escalate, find_escalations


@flow(name="deadlines", flow_run_name="deadlines 기한 점검", persist_result=True)
def deadlines() -> dict[str, int]:
    """Take every rung reached by now; returns how many of each were taken (or deferred)."""
    taken = []
    # One at a time: two timed-out answers to one case must not race for its single wait.
    for escalation in find_escalations():
        taken.append((escalation, escalate(escalation)))
    create_table_artifact(
        key="deadlines",
        table=[
            {"case": e.case_ref, "target": e.target, "id": e.id, "level": e.level, "outcome": outcome}
            for e, outcome in taken
        ],
        description="기한 점검 결과 (deadline sweep): 사례·대상·단계",
    )
    return dict(Counter(outcome for _, outcome in taken))
