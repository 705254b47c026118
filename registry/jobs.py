"""The rules of job placement: which job track a resident may take, and when the 시니어클럽 recruits.

Facts (korea_domain.md §3):
- 노인공익활동사업 (senior public-interest activity): 65 or older AND receiving 기초연금.
- 노인역량활용사업 (senior capability jobs): 60 or older.
- Both exclude 생계급여 recipients, 건강보험 직장가입자 (employee health-insurance members) and people
  with a 장기요양 grade (1–5 or 인지지원등급).
- Working-age residents: 생계급여 recipients go to the 지역자활센터 (자활근로, 국민기초생활 보장법 §15–18);
  the others to the 고용센터 (국민취업지원제도, 15–64, 구직자취업촉진법 §6). A member of an employer's
  health insurance already has a job, so neither applies.
- The 시니어클럽 recruits once a year (2026 programme: 2025-11-28 ~ 12-26) and announces mid-December
  to early January; outside the window it fills vacancies from its waiting list.

The facts are personal data: they are columns of ``Resident`` and stay in the registry. Only the
track's code and the codes of the reasons leave it. Ages are counted by year of birth (the registry
keeps no birth date), which can place a resident in a track up to a year early; the 시니어클럽's own
eligibility check corrects that.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from registry.calendar import BusinessCalendar
from registry.cases import CaseError, audit
from registry.models import Case, Resident

SENIOR_PUBLIC_INTEREST = "senior-public-interest"  # 노인공익활동사업
SENIOR_CAPABILITY = "senior-capability"  # 노인역량활용사업
SELF_SUFFICIENCY = "self-sufficiency"  # 지역자활센터 자활근로
EMPLOYMENT_SUPPORT = "employment-support"  # 고용센터 국민취업지원제도
NO_TRACK = "no-track"
SENIOR_TRACKS = (SENIOR_PUBLIC_INTEREST, SENIOR_CAPABILITY)

PUBLIC_INTEREST_AGE = 65
CAPABILITY_AGE = 60
WORKING_AGE = (15, 64)

# The facts a track depends on, as the CLI names them: (column, Korean, English).
FACTS: tuple[tuple[str, str, str], ...] = (
    ("basic_pension", "기초연금 수급", "receives the basic pension"),
    ("livelihood_benefit", "생계급여 수급", "receives the livelihood benefit"),
    ("employee_insured", "건강보험 직장가입자", "employee health-insurance member"),
    ("ltc_grade", "장기요양 등급(1–5, 인지지원)", "has a long-term-care grade"),
)
SENIOR_JOB_EXCLUSIONS = ("livelihood_benefit", "employee_insured", "ltc_grade")


@dataclass(frozen=True)
class JobFacts:
    age: int
    basic_pension: bool
    livelihood_benefit: bool
    employee_insured: bool
    ltc_grade: bool


@dataclass(frozen=True)
class Track:
    """A resident's job track and why: codes only, so it may travel through Prefect."""

    code: str
    reasons: tuple[str, ...] = ()


def job_track(facts: JobFacts) -> Track:
    """The one track a resident is referred to, senior jobs first (they suit the complexes' residents)."""
    excluded = tuple(f"excluded-{name.replace('_', '-')}" for name in SENIOR_JOB_EXCLUSIONS if getattr(facts, name))
    if facts.age >= CAPABILITY_AGE and not excluded:
        if facts.age >= PUBLIC_INTEREST_AGE and facts.basic_pension:
            return Track(SENIOR_PUBLIC_INTEREST, (f"age-{PUBLIC_INTEREST_AGE}-plus", "basic-pension"))
        return Track(SENIOR_CAPABILITY, (f"age-{CAPABILITY_AGE}-plus",))
    low, high = WORKING_AGE
    if not low <= facts.age <= high:
        return Track(NO_TRACK, excluded or ("age",))
    if facts.livelihood_benefit:
        return Track(SELF_SUFFICIENCY, ("livelihood-benefit",))
    if facts.employee_insured:
        return Track(NO_TRACK, ("employed",))
    # Between 60 and 64 a senior job was possible: say why it is not one.
    return Track(EMPLOYMENT_SUPPORT, ("working-age", *(excluded if facts.age >= CAPABILITY_AGE else ())))


def facts_of(resident: Resident, today: dt.date) -> JobFacts | None:
    """The resident's facts, or None while any of them is unknown (not yet recorded)."""
    values = {name: getattr(resident, name) for name, _, _ in FACTS}
    if any(value is None for value in values.values()):
        return None
    return JobFacts(age=today.year - resident.birth_year, **values)


def unknown_facts(resident: Resident) -> list[str]:
    return [name for name, _, _ in FACTS if getattr(resident, name) is None]


def record_facts(session: Session, case: Case, facts: dict[str, bool], *, by: str) -> None:
    """Write the facts the coordinator verified onto the case's resident; names only in the audit trail."""
    unknown = sorted(set(facts) - {name for name, _, _ in FACTS})
    if unknown:
        raise CaseError(f"facts: 알 수 없는 항목 {', '.join(unknown)} (unknown fact)")
    if not facts:
        raise CaseError("facts: 기록할 항목이 없습니다 (nothing to record)")
    if case.status != "open":
        raise CaseError(f"case: 사례 {case.ref}는 종결되었습니다 (case is closed)")
    if case.intervention != "job-placement" or case.resident is None:
        raise CaseError(f"case: 사례 {case.ref}는 일자리 연계 사례가 아닙니다 (not a job-placement case)")
    for name, value in facts.items():
        setattr(case.resident, name, value)
    audit(session, case, by, "job-facts-recorded", facts=sorted(facts))


@dataclass(frozen=True)
class RecruitmentWindow:
    """The 시니어클럽's yearly recruitment: applications from ``opens`` to ``closes``, results by ``announced``."""

    opens: dt.date
    closes: dt.date
    announced: dt.date

    def is_open(self, day: dt.date) -> bool:
        return self.opens <= day <= self.closes


# Business days after the window closes by which the club announces who is placed (early January).
ANNOUNCEMENT_BUSINESS_DAYS = 5


def parse_window(text: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """``"11-28/12-26"`` → ((11, 28), (12, 26)); a clear error naming the setting otherwise."""
    try:
        opens, closes = (tuple(int(part) for part in side.split("-")) for side in text.split("/"))
        for month, day in (opens, closes):
            dt.date(2024, month, day)  # a leap year: 02-29 is a valid month-day
    except ValueError as error:
        raise ValueError(f"YEONGYE_SENIOR_JOBS_RECRUITMENT: 'MM-DD/MM-DD' 형식이어야 합니다 (got {text!r})") from error
    return (opens[0], opens[1]), (closes[0], closes[1])  # type: ignore[index]


def recruitment_window(today: dt.date, window: str, days: BusinessCalendar) -> RecruitmentWindow:
    """The window open today, else the next one. A window may run over New Year (e.g. 12-01/01-15)."""
    (open_month, open_day), (close_month, close_day) = parse_window(window)
    for year in (today.year - 1, today.year, today.year + 1):
        opens = _month_day(year, open_month, open_day)
        over_new_year = (close_month, close_day) < (open_month, open_day)
        closes = _month_day(year + over_new_year, close_month, close_day)
        if today <= closes:
            return RecruitmentWindow(opens, closes, days.add_business_days(closes, ANNOUNCEMENT_BUSINESS_DAYS))
    raise AssertionError("unreachable: a yearly window always lies ahead")


def _month_day(year: int, month: int, day: int) -> dt.date:
    """02-29 falls on 02-28 in a common year."""
    try:
        return dt.date(year, month, day)
    except ValueError:
        return dt.date(year, month, day - 1)
