"""The rules of job placement: which job track a resident may take, why, and when the 시니어클럽 recruits.

Facts (korea_domain.md §3; each rule is stated again, with its source, where it is coded below):
- 노인공익활동사업 (senior public-interest activity): 65 or older AND receiving 기초연금 (§3.1).
- 노인역량활용사업 (senior capability jobs): 60 or older (§3.1).
- Both exclude 생계급여 recipients, 건강보험 직장가입자 (employee health-insurance members), people
  with a 장기요양 grade (1–5 or 인지지원등급) and people already in another government job
  programme (§3.1, the 2024 guidelines).
- 생계급여 recipients go to the 지역자활센터 instead, whatever their age (§3.1 design note): its
  participants are 수급자 and 차상위자 (§3.3). Seniors therefore get 자활근로 where senior jobs
  exclude them.
- Working-age residents otherwise go to the 고용센터 (국민취업지원제도, 15–64, §3.2). A member of an
  employer's health insurance already has a job, so neither applies.
- Whoever is left gets no track, and the case closes with a code saying why and what the
  coordinator can do (``NO_TRACKS``): never a bare "no track".
- The 시니어클럽 recruits once a year (2026 programme: 2025-11-28 ~ 12-26) and announces mid-December
  to early January; outside the window it fills vacancies from its waiting list (§3.1).

The facts are personal data: they are columns of ``Resident`` and stay in the registry. Only the
track's code leaves it; the reasons behind it and their labels go to the audit trail. So a no-track
code names what the coordinator can do, and the one that rests on a health fact (a 장기요양 grade)
does not name it. Ages are counted by year of birth (the registry keeps no birth date), which can
place a resident in a track up to a year early; the receiving agency's eligibility check corrects that.
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
SENIOR_TRACKS = (SENIOR_PUBLIC_INTEREST, SENIOR_CAPABILITY)
UNKNOWN = "unknown"  # a fact is not recorded yet: the coordinator is asked to verify it

# No track: the code says why, and the case closes with it.
NO_TRACK_UNDER_15 = "no-track-under-15"
NO_TRACK_EMPLOYED = "no-track-employed"
NO_TRACK_IN_JOB_PROGRAMME = "no-track-in-job-programme"
# Excluded from senior jobs by a 장기요양 grade: health data, so the code does not name it (PIPA §23).
NO_TRACK_SENIOR_EXCLUDED = "no-track-senior-excluded"

# Every assessment as a coordinator reads it, Korean first: what the code means and what to do next.
LABELS: dict[str, tuple[str, str]] = {
    SENIOR_PUBLIC_INTEREST: (
        "노인공익활동사업: 만 65세 이상·기초연금 수급 → 시니어클럽에 신청",
        "senior public-interest activity: 65+ with the basic pension; apply to the senior club",
    ),
    SENIOR_CAPABILITY: (
        "노인역량활용사업: 만 60세 이상 → 시니어클럽에 신청",
        "senior capability job: 60+; apply to the senior club",
    ),
    SELF_SUFFICIENCY: (
        "자활근로: 생계급여 수급자는 나이와 관계없이(노인일자리 제외 대상) → 지역자활센터에 의뢰",
        "self-sufficiency work: livelihood-benefit recipients of any age (no senior job); refer to the centre",
    ),
    EMPLOYMENT_SUPPORT: (
        "국민취업지원제도: 만 15–64세 → 고용센터에 의뢰",
        "national employment support: ages 15–64; refer to the employment centre",
    ),
    UNKNOWN: (
        "확인할 사항 있음: yeongye jobs facts 로 기록한 뒤 승인",
        "facts to verify: record them with yeongye jobs facts, then approve",
    ),
    NO_TRACK_UNDER_15: (
        "연계할 일자리 없음: 만 15세 미만 — 만 15세가 되면 다시 의뢰",
        "no job track: under 15; refer again at 15",
    ),
    NO_TRACK_EMPLOYED: (
        "연계할 일자리 없음: 건강보험 직장가입자(재직 중) — 일을 그만두면 yeongye jobs facts 로 고치고 다시 의뢰",
        "no job track: employed (employee health insurance); when the job ends, correct the fact and refer again",
    ),
    NO_TRACK_IN_JOB_PROGRAMME: (
        "연계할 일자리 없음: 다른 정부 일자리사업 참여 중이라 노인일자리 제외 — 그 사업이 끝나면 다시 의뢰",
        "no job track: in another government job programme, so no senior job; refer again when it ends",
    ),
    NO_TRACK_SENIOR_EXCLUDED: (
        "연계할 일자리 없음: 장기요양 등급이 있어 노인일자리 제외, 국민취업지원제도 나이(15–64세)도 지남 — "
        "돌봄 등 다른 지원을 검토; 다른 급여 수급자나 차상위자라면 지역자활센터에 참여를 문의",
        "no job track: a long-term-care grade excludes senior jobs and the employment programme ends at 64; "
        "consider other support; a recipient of another benefit or near-poor may ask the self-sufficiency centre",
    ),
}
NO_TRACKS = frozenset({NO_TRACK_UNDER_15, NO_TRACK_EMPLOYED, NO_TRACK_IN_JOB_PROGRAMME, NO_TRACK_SENIOR_EXCLUDED})

PUBLIC_INTEREST_AGE = 65
# §3.1 says "60+ (some types 65+)" without naming the types: 60 here, the club checks the type's age.
CAPABILITY_AGE = 60
# 구직자취업촉진법 §6 as the statute reads (version 2023-08-08). Secondary sources cite 15–69 from 2024
# by 고시 or amendment: UNCERTAIN (korea_domain.md §3.2, §7 item 5); the 고용센터 decides.
WORKING_AGE = (15, 64)

# The facts a track depends on, as the CLI names them: (column, Korean, English).
FACTS: tuple[tuple[str, str, str], ...] = (
    ("basic_pension", "기초연금 수급", "receives the basic pension"),
    ("livelihood_benefit", "생계급여 수급", "receives the livelihood benefit"),
    ("employee_insured", "건강보험 직장가입자", "employee health-insurance member"),
    ("ltc_grade", "장기요양 등급(1–5, 인지지원)", "has a long-term-care grade"),
    ("other_job_programme", "다른 정부 일자리사업 참여 중", "takes part in another government job programme"),
)
SENIOR_JOB_EXCLUSIONS = ("livelihood_benefit", "employee_insured", "ltc_grade", "other_job_programme")


@dataclass(frozen=True)
class JobFacts:
    age: int
    basic_pension: bool
    livelihood_benefit: bool
    employee_insured: bool
    ltc_grade: bool
    other_job_programme: bool


@dataclass(frozen=True)
class Track:
    """A resident's job track (or no-track code) and the facts behind it, as codes."""

    code: str
    reasons: tuple[str, ...] = ()


def senior_job_exclusions(facts: JobFacts) -> tuple[str, ...]:
    """Why the 시니어클럽 would not take the resident, whatever their age (korea_domain.md §3.1).

    The source is a 시니어클럽 site quoting the 2024 guidelines; the 2026 guidelines are not in the
    reference. Two readings it leaves open:
    - It excludes 생계급여 recipients from the programme and adds that 취업알선형 "has its own rules"
      without giving them (UNCERTAIN). No type is taken to be open to them: they go to 자활
      instead, as its design note says.
    - It excludes "people in 2+ government job programmes" next to "no double participation".
      Read here as "joining would make a second programme", so anyone already in one is
      excluded (UNCERTAIN: it may mean someone already in two; the club's eligibility check decides).
    """
    return tuple(f"excluded-{name.replace('_', '-')}" for name in SENIOR_JOB_EXCLUSIONS if getattr(facts, name))


def job_track(facts: JobFacts) -> Track:
    """The one track a resident is referred to, senior jobs first (they suit the complexes' residents).

    Without a track, the code says why, so the coordinator knows what to do next (``LABELS``).
    """
    youngest, oldest = WORKING_AGE
    if facts.age < youngest:
        # The youngest age §3 gives any programme is 국민취업지원제도's 15 (§3.2); §3.3 gives none for 자활.
        return Track(NO_TRACK_UNDER_15, ("under-15",))
    excluded = senior_job_exclusions(facts)
    if facts.age >= CAPABILITY_AGE and not excluded:
        if facts.age >= PUBLIC_INTEREST_AGE and facts.basic_pension:
            return Track(SENIOR_PUBLIC_INTEREST, ("age-65-plus", "basic-pension"))
        return Track(SENIOR_CAPABILITY, ("age-60-plus",))
    if facts.livelihood_benefit:
        # 자활 takes 수급자 (§3.3) at any age: a senior joins of their own will (consent opened the case).
        # Whether taking part is also a condition of the benefit (조건부수급자: working-capable
        # recipients, §9⑤) is the 보장기관's decision, and §3.3 gives no ages for work capability;
        # the referral is the same either way. §3.3 names no exclusion for a 장기요양 grade or another
        # job programme: the 지역자활센터 decides, and answers not-eligible (UNCERTAIN).
        return Track(SELF_SUFFICIENCY, ("livelihood-benefit",))
    if facts.employee_insured:
        return Track(NO_TRACK_EMPLOYED, ("employed",))
    if facts.age <= oldest:
        # Between 60 and 64 a senior job was possible: say why it is not one. In another programme,
        # 구직촉진수당 (Type I) may be refused (§7③: certain 재정지원 일자리, 6 months); the service is not.
        why_not_senior = excluded if facts.age >= CAPABILITY_AGE else ()
        allowance = ("allowance-excluded-job-programme",) if facts.other_job_programme else ()
        return Track(EMPLOYMENT_SUPPORT, ("working-age", *why_not_senior, *allowance))
    # 65 or older, not on 생계급여 nor employed, and excluded from senior jobs: nothing in §3 is left.
    if facts.ltc_grade:
        return Track(NO_TRACK_SENIOR_EXCLUDED, excluded)
    return Track(NO_TRACK_IN_JOB_PROGRAMME, excluded)


def unknown_facts(resident: Resident) -> list[str]:
    return [name for name, _, _ in FACTS if getattr(resident, name) is None]


def assess(resident: Resident, today: dt.date) -> Track:
    """The resident's track today, or ``UNKNOWN`` with the facts still to verify."""
    unknown = unknown_facts(resident)
    if unknown:
        return Track(UNKNOWN, tuple(unknown))
    facts = {name: getattr(resident, name) for name, _, _ in FACTS}
    return job_track(JobFacts(age=today.year - resident.birth_year, **facts))


def label(code: str) -> str:
    """The assessment as the audit trail shows it: Korean, then English."""
    ko, en = LABELS[code]
    return f"{ko} ({en})"


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
