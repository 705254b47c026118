"""No sign of life is a clock in hours, on every day: a resident nobody has reached on the Friday
evening before 추석 has the police at the door within 48 hours, and every notice goes out on time.

The clock is injected; the deadline sweep is run whenever it has something to do, as its 15-minute
schedule would find it, and the case's flow run is run after each sweep.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from flows.deadlines.flow import deadlines
from flows.outreach import flow as outreach_flow
from flows.outreach.flow import outreach
from registry import calendar, cases
from registry.calendar import SEOUL, BusinessCalendar, FixedClock, SystemClock
from registry.db import Database
from registry.escalation import HOURS, Ladder, due_escalations
from registry.models import Referral
from tasks import runtime
from tests.driving import coordinator_of, run_once
from yeongye import steering
from yeongye.mailcapture import MailCapture, read_captured

# Friday 18:00; Monday is a working day, then 추석 from Tuesday to Thursday (2027-09-14 … 16).
FOUND = dt.datetime(2027, 9, 10, 18, 0, tzinfo=SEOUL)
SWEEP = dt.timedelta(minutes=15)


def _first_seen(mail: MailCapture, seen: dict[tuple[str, str], dt.datetime], now: dt.datetime) -> None:
    for message in read_captured(mail.mail_dir):
        key = message.headers["X-Yeongye-Key"].split(":")[1]
        for to in message.to:
            seen.setdefault((key, to), now)


def _referrals(db: Database, case_ref: str) -> dict[str, Referral]:
    with db.transaction() as session:
        case = cases.find_case(session, case_ref)
        return {r.step: r for r in session.scalars(select(Referral).where(Referral.case_id == case.id))}


def test_no_contact_reaches_the_police_within_48_hours_over_the_weekend_before_chuseok(
    prefect_server: None, registry: Database, mail: MailCapture
) -> None:
    outreach.to_deployment(name="outreach").apply()
    clock = FixedClock(FOUND - dt.timedelta(hours=2))
    runtime.use_clock(clock)
    seen: dict[tuple[str, str], dt.datetime] = {}
    police_called: dt.datetime | None = None
    try:
        coordinator = coordinator_of(registry, "F")
        launched = steering.launch(
            registry, intervention="outreach", complex_code="F", resident_ref="R-F-001", by=coordinator
        )
        run_once(launched.flow_run_id, outreach)
        clock.at = FOUND  # the volunteers report: nobody answered
        steering.respond(
            registry,
            launched.case_ref,
            agency_id="gaon-volunteer-1",
            status="completed",
            reason="두 번 방문, 인기척 없음",
            outcome=outreach_flow.NO_CONTACT,
            by=coordinator,
        )
        run_once(launched.flow_run_id, outreach)
        _first_seen(mail, seen, clock.now())
        # Nobody answers anything from now on: only the clock and the sweep move the case.
        while clock.now() < FOUND + dt.timedelta(hours=50):
            clock.advance(SWEEP)
            with registry.transaction() as session:
                due = due_escalations(session, clock.now(), BusinessCalendar(), Ladder())
            if due:
                deadlines()
                run_once(launched.flow_run_id, outreach)
                _first_seen(mail, seen, clock.now())
            if police_called is None and "welfare-check-1" in _referrals(registry, launched.case_ref):
                police_called = clock.now()
    finally:
        runtime.use_clock(SystemClock())

    assert police_called is not None and police_called - FOUND <= dt.timedelta(hours=48), police_called
    referrals = _referrals(registry, launched.case_ref)
    repeat, door, police = referrals["check-2"], referrals["door-check-1"], referrals["welfare-check-1"]
    assert (repeat.agency_id, door.agency_id, police.agency_id) == (
        "gaon-volunteer-1",
        "gaon-mgmt-1",
        "gaon-police-1",
    )
    assert repeat.status == "failed" and door.status == "failed"
    assert "check-2-community-center" not in referrals  # the time ran out: escalated, not handed on

    # Every notice went out at its rung, to the quarter hour, weekend or not.
    def due_of(referral: Referral) -> dt.datetime:
        assert referral.due_at is not None
        return referral.due_at.replace(tzinfo=referral.due_at.tzinfo or dt.UTC).astimezone(SEOUL)

    assert due_of(repeat) == FOUND + dt.timedelta(hours=outreach_flow.REPEAT_CHECK_HOURS)
    expected = {}
    for referral, agency_email in ((repeat, "volunteer1@example.org"), (door, "mgmt1@example.org")):
        key = f"{referral.step}-{referral.agency_id}"
        rungs = {name: due_of(referral) + dt.timedelta(hours=hours) for name, hours in HOURS.items()}
        expected |= {
            (f"{key}-reminder", agency_email): rungs["reminder"],
            (f"{key}-reminder", "coord-f@example.org"): rungs["reminder"],
            (f"{key}-coordinator", "coord-f@example.org"): rungs["coordinator"],
            (f"{key}-supervisor", "supervisor-1@example.org"): rungs["supervisor"],
            (f"{key}-timed-out", "supervisor-1@example.org"): rungs["timed-out"],
        }
    for key, rung in expected.items():
        assert key in seen, (key, sorted(seen))
        assert rung <= seen[key] < rung + SWEEP, (key, seen[key], rung)
    assert seen[("welfare-check-1", "police1@example.org")] == police_called  # emailed at once

    # On business-day clocks the repeat check alone would have been due a week later, after 추석.
    days = BusinessCalendar()
    assert days.add_business_days(calendar.today(FixedClock(FOUND)), 2) == dt.date(2027, 9, 17)
