"""The deadline ladder: what happens to a handoff or a decision nobody answers.

Before the due date the agency is reminded; after it the coordinator, then the supervisor hear of
it; after a final deadline the handoff times out and the flow itself decides what comes next
(the next agency of the type, or the coordinator names one). Decisions climb the same ladder but
never time out: the clock never decides for a person.

Every rung is a date in Korean business days from the due date, so a holiday in between moves
every rung; such rungs are taken in working hours, so no one is emailed at midnight. A life-safety
step (a referral with a due time, ``Referral.due_at``) climbs in hours instead, on every day and at
any hour (``HOURS``). A rung is taken once (``escalation_level`` records the highest one taken); a
sweep that did not run for a while takes only the highest rung reached, not every missed one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.calendar import SEOUL, BusinessCalendar, hours_later
from registry.models import Approval, Case, Referral
from registry.timeline import OPEN_REFERRAL

# Indexes into ``LEVELS``, as stored in ``escalation_level``.
REMINDER, COORDINATOR, SUPERVISOR, TIMED_OUT = 1, 2, 3, 4


@dataclass(frozen=True)
class Ladder:
    """The rungs, in business days relative to the due date (settings can change each)."""

    reminder_before: int = 1
    coordinator_after: int = 1
    supervisor_after: int = 3
    final_after: int = 5

    def __post_init__(self) -> None:
        if not (0 < self.coordinator_after < self.supervisor_after < self.final_after) or self.reminder_before < 0:
            raise ValueError(
                "deadline ladder: need 0 < coordinator_after < supervisor_after < final_after "
                f"and reminder_before >= 0 (got {self})"
            )

    def dates(self, due: dt.date, days: BusinessCalendar, *, legal: bool = False) -> dict[str, dt.date]:
        """The day each rung is reached, e.g. for showing a case's next escalation.

        A legal clock (e.g. a 3-day emergency hold) runs on calendar days and ends on its day:
        the coordinator is warned the day before and on the day, and the day after it has run out
        the waiting flow gets "timed-out" (its own code decides, e.g. discharge).
        """
        if legal:
            after = due + dt.timedelta(days=1)
            return {"reminder": due - dt.timedelta(days=1), "coordinator": due, "supervisor": after, "timed-out": after}
        return {
            "reminder": days.add_business_days(due, -self.reminder_before),
            "coordinator": days.add_business_days(due, self.coordinator_after),
            "supervisor": days.add_business_days(due, self.supervisor_after),
            "timed-out": days.add_business_days(due, self.final_after),
        }

    def level_on(self, today: dt.date, due: dt.date, days: BusinessCalendar, *, legal: bool = False) -> int:
        """The highest rung reached on ``today`` (0 if none)."""
        rungs = self.dates(due, days, legal=legal).values()
        reached = [level for level, day in enumerate(rungs, start=1) if today >= day]
        return max(reached, default=0)


# The rungs of a life-safety clock, in hours from the due time. Every rung comes before it: the
# agency is reminded 2 hours before, the coordinator told an hour before and the supervisor half an
# hour before, so people can still act; at the due time the step times out and the flow escalates
# at once (korea_domain.md §4.3: no sign of life for 24–50 hours calls for a visit, then an emergency
# entry with the police or 119). The deadline sweep runs every 15 minutes (prefect.yaml), so a rung
# is at most that late.
HOURS: dict[str, float] = {"reminder": -2, "coordinator": -1, "supervisor": -0.5, "timed-out": 0}
# Rungs counted in days are taken between these hours (Seoul).
WORKING_HOURS = (dt.time(8, 0), dt.time(20, 0))


def hour_rungs(due_at: dt.datetime) -> dict[str, dt.datetime]:
    """The moment each rung of a life-safety clock is reached."""
    return {name: hours_later(due_at, hours) for name, hours in HOURS.items()}


def hour_level(now: dt.datetime, due_at: dt.datetime) -> int:
    """The highest rung of a life-safety clock reached at ``now`` (0 if none)."""
    reached = [level for level, moment in enumerate(hour_rungs(due_at).values(), start=1) if now >= moment]
    return max(reached, default=0)


@dataclass(frozen=True)
class Escalation:
    """One rung to take now: for a referral (handoff) or an approval (decision)."""

    target: str  # "referral" | "approval"
    id: int
    case_ref: str
    level: int


def due_escalations(session: Session, now: dt.datetime, days: BusinessCalendar, ladder: Ladder) -> list[Escalation]:
    """Every open handoff and pending decision of an open case that has reached a rung not yet taken.

    Rungs counted in hours are taken whenever the sweep runs; rungs counted in days in working hours.
    """
    local = now.astimezone(SEOUL)
    today, working = local.date(), WORKING_HOURS[0] <= local.time() < WORKING_HOURS[1]
    referrals = session.execute(
        select(Case.ref, Referral)
        .join(Referral, Referral.case_id == Case.id)
        .where(
            Case.status == "open",
            Referral.kind == "handoff",
            Referral.status.in_(OPEN_REFERRAL),
            Referral.escalation_level < TIMED_OUT,
        )
        .order_by(Referral.id)
    ).all()
    approvals = session.execute(
        select(Case.ref, Approval)
        .join(Approval, Approval.case_id == Case.id)
        .where(Case.status == "open", Approval.status == "requested", Approval.escalation_level < SUPERVISOR)
        .order_by(Approval.id)
    ).all()
    found = [
        Escalation("referral", referral.id, case_ref, level)
        for case_ref, referral in referrals
        if (level := _referral_level(referral, now, today, working, days, ladder)) > referral.escalation_level
    ]
    if working:
        found += [
            Escalation("approval", approval.id, case_ref, level)
            for case_ref, approval in approvals
            if (level := min(ladder.level_on(today, approval.due_date, days), SUPERVISOR)) > approval.escalation_level
        ]
    return found


def _referral_level(
    referral: Referral, now: dt.datetime, today: dt.date, working: bool, days: BusinessCalendar, ladder: Ladder
) -> int:
    if referral.due_at is not None:
        due_at = referral.due_at if referral.due_at.tzinfo else referral.due_at.replace(tzinfo=dt.UTC)
        return hour_level(now, due_at)
    if not working:
        return 0
    return ladder.level_on(today, referral.due_date, days, legal=bool(referral.legal_basis))
