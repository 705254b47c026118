"""Deadlines that escalate: reminder → coordinator → supervisor → timed-out, on Korean business days."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from flows.deadlines.flow import deadlines
from registry import cases
from registry.calendar import SEOUL, BusinessCalendar, FixedClock, SystemClock
from registry.db import Database
from registry.escalation import SUPERVISOR, TIMED_OUT, Ladder, due_escalations
from registry.models import AuditEntry
from tasks import runtime
from tests.driving import coordinator_of, deploy_hoarding, read_case, run_once, signed_in
from yeongye import steering
from yeongye.mailcapture import MailCapture, read_captured

# Opened Monday 2026-12-21; 5 business days around Christmas (Fri 12-25) make the due date Tue 12-29.
# Rungs, hand-computed: reminder 1 business day before due = Mon 12-28; coordinator 1 after = Wed 12-30;
# supervisor 3 after = Mon 2027-01-04 (New Year's Day, Fri 01-01, skipped); timed out 5 after = Wed 01-06.
OPENED = dt.datetime(2026, 12, 21, 9, 0, tzinfo=SEOUL)
EXPECTED_FIRST_SEEN = {
    ("assessment-gaon-cc-1-reminder", "cc1@example.org"): dt.date(2026, 12, 28),
    ("assessment-gaon-mgmt-1-reminder", "mgmt1@example.org"): dt.date(2026, 12, 28),
    ("assessment-gaon-cc-1-coordinator", "coord-c@example.org"): dt.date(2026, 12, 30),
    ("assessment-gaon-mgmt-1-coordinator", "coord-c@example.org"): dt.date(2026, 12, 30),
    ("assessment-gaon-cc-1-supervisor", "supervisor-2@example.org"): dt.date(2027, 1, 4),
    ("assessment-gaon-mgmt-1-supervisor", "supervisor-2@example.org"): dt.date(2027, 1, 4),
    ("assessment-gaon-cc-1-timed-out", "cc1@example.org"): dt.date(2027, 1, 6),
    ("assessment-gaon-mgmt-1-timed-out", "mgmt1@example.org"): dt.date(2027, 1, 6),
    ("assessment", "cc2@example.org"): dt.date(2027, 1, 6),  # the next 행정복지센터 takes over
}


def _first_seen(mail: MailCapture, seen: dict[tuple[str, str], dt.date], day: dt.date) -> None:
    for message in read_captured(mail.mail_dir):
        step = message.headers["X-Yeongye-Key"].split(":")[1]
        for to in message.to:
            seen.setdefault((step, to), day)


def test_unanswered_handoffs_climb_the_ladder_across_holidays_then_the_flow_moves_on(
    prefect_server: None, registry: Database, mail: MailCapture
) -> None:
    deploy_hoarding()
    clock = FixedClock(OPENED)
    runtime.use_clock(clock)
    try:
        launched = steering.launch(
            registry,
            intervention="hoarding",
            complex_code="C",
            resident_ref="R-C-001",
            by=coordinator_of(registry, "C"),
        )
        assert run_once(launched.flow_run_id).state.is_paused()  # type: ignore[union-attr]
        seen: dict[tuple[str, str], dt.date] = {}
        _first_seen(mail, seen, OPENED.date())
        day = OPENED.date()
        while day <= dt.date(2027, 1, 6):
            clock.at = dt.datetime.combine(day, dt.time(10, 0), SEOUL)
            # A rung the sweep had to defer (the case was busy with another answer) is taken by the next one.
            for _ in range(5):
                taken = deadlines()
                run_once(launched.flow_run_id)
                if _coordinator_skips_a_timed_out_need(registry, launched.case_ref):
                    run_once(launched.flow_run_id)
                elif "deferred" not in taken:
                    break
            _first_seen(mail, seen, day)
            day += dt.timedelta(days=1)
    finally:
        runtime.use_clock(SystemClock())

    ladder = {key: day for key, day in seen.items() if key in EXPECTED_FIRST_SEEN}
    assert ladder == EXPECTED_FIRST_SEEN
    # Nothing escalated twice, and nobody outside the ladder was written to.
    keys = [m.headers["X-Yeongye-Key"] for m in read_captured(mail.mail_dir)]
    assert len(keys) == len(set(keys))
    first_emails = {("assessment", "cc1@example.org"), ("assessment", "mgmt1@example.org")}
    reroute_request = {("reroute-assessment-management-office-1", "coord-c@example.org")}
    assert set(seen) - set(EXPECTED_FIRST_SEEN) == first_emails | reroute_request

    with registry.transaction() as session:
        case = cases.find_case(session, launched.case_ref)
        referrals = {r.agency_id: r for r in cases.referrals_in_step(session, case, "assessment")}
        assert referrals["gaon-cc-1"].status == "failed" and "기한" in (referrals["gaon-cc-1"].reason or "")
        assert referrals["gaon-mgmt-1"].status == "failed"
        # The flow's own code chose: the next 행정복지센터, due 5 business days after 01-06.
        assert referrals["gaon-cc-2"].status == "requested"
        assert referrals["gaon-cc-2"].due_date == dt.date(2027, 1, 13)
        escalated = session.scalars(
            select(AuditEntry.detail).where(AuditEntry.case_id == case.id, AuditEntry.action == "escalated")
        ).all()
        assert sorted(d["level"] for d in escalated) == sorted(
            ["reminder", "coordinator", "supervisor", "timed-out"] * 2
        )
        # The only 관리사무소 timed out: the coordinator was asked to name another and skipped it.
        skipped = session.execute(
            select(AuditEntry.actor, AuditEntry.detail).where(
                AuditEntry.case_id == case.id, AuditEntry.action == "approval-decided"
            )
        ).all()
        assert [(actor, d["key"]) for actor, d in skipped] == [("coord-c", "reroute-assessment-management-office-1")]
    wait = steering.current_wait(registry, launched.case_ref)
    assert wait.kind == "answer" and wait.agencies == ["gaon-cc-2"]


def _coordinator_skips_a_timed_out_need(registry: Database, case_ref: str) -> bool:
    """When no agency of a timed-out type is left, the coordinator skips it (as `yeongye reroute --skip` would)."""
    wait = steering.current_wait(registry, case_ref, settle_seconds=0)
    if wait.kind != "reroute":
        return False
    coordinator = signed_in(registry, read_case(registry, case_ref).coordinator_id)
    steering.reroute(registry, case_ref, agency_id="", reason="대체 기관 없음 (none left)", by=coordinator)
    return True


def test_decisions_are_escalated_but_never_timed_out(registry: Database) -> None:
    with registry.transaction() as session:
        case = cases.open_case(
            session, intervention="hoarding", complex_code="A", resident_ref="R-A-001", opened_at=OPENED, by="coord-a"
        )
        cases.request_approval(
            session,
            case,
            key="decision-budget",
            kind="budget",
            approver_id=case.supervisor_id,  # supervisor-2, of complex A's centre
            due_date=dt.date(2026, 12, 29),
        )
        days = BusinessCalendar()
        assert [
            e.level for e in due_escalations(session, dt.datetime(2026, 12, 28, 10, tzinfo=SEOUL), days, Ladder())
        ] == [1]
        far_later = due_escalations(session, dt.datetime(2027, 6, 1, 10, tzinfo=SEOUL), days, Ladder())
    assert [(e.target, e.level) for e in far_later] == [("approval", SUPERVISOR)]


def test_a_ladder_out_of_order_is_refused() -> None:
    try:
        Ladder(coordinator_after=3, supervisor_after=2)
    except ValueError as error:
        assert "coordinator_after < supervisor_after" in str(error)
    else:
        raise AssertionError("an inverted ladder was accepted")


def test_legal_clocks_run_on_calendar_days_and_run_out_on_their_day() -> None:
    """A hold ending on Saturday 2026-09-26 (추석) is warned on Friday and times out on Sunday."""
    due, days = dt.date(2026, 9, 26), BusinessCalendar()
    assert Ladder().dates(due, days, legal=True) == {
        "reminder": dt.date(2026, 9, 25),
        "coordinator": dt.date(2026, 9, 26),
        "supervisor": dt.date(2026, 9, 27),
        "timed-out": dt.date(2026, 9, 27),
    }
    assert Ladder().level_on(dt.date(2026, 9, 27), due, days, legal=True) == TIMED_OUT
    assert Ladder().level_on(dt.date(2026, 9, 27), due, days) == 1  # a business-day ladder is only at its reminder
