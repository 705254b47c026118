"""The rules of housing support (주거지원): which housing needs there are, and who meets each one.

The coordinator (the complex's 주거복지사) counsels the resident and records the needs found as
codes (``yeongye housing needs``); each code is one handoff, to the agency type and for the service
of ``NEEDS``. Facts (korea_domain.md §6):
- District 주거복지센터 handle housing-cost counselling, emergency housing and fuel costs and house
  repair (§6.2); the 긴급지원 and the 주거급여 are applied for at the 행정복지센터 (the 동 office).
- The 주거안심종합센터 (SH, from 2022) runs 주거비 지원 and the 주거상향지원사업, moving residents of
  반지하·고시원·옥탑방 into public rental (§6.2).
- LH, the landlord of the permanent-rental complexes, and its 주거복지사 handle moves between public
  rentals and housing-environment improvement, including for mobility-impaired households (§6.3).
- Arrears relief from partner donors is the practice of the complexes (the study's donations and
  sharing, agency type ``private-donor``); §6 names no public scheme that pays arrears.

What the reference does not settle, and the agencies therefore decide (a decline hands the need
on to the next agency of its type, then the coordinator names one or skips it):
- UNCERTAIN who pays moving costs: §6 names 주거비 지원 at the 주거안심종합센터 but no moving-cost
  scheme, so moving costs go there and the centre says whether it pays.
- UNCERTAIN eligibility for the 긴급지원 주거지원·연료비 (긴급복지지원법 criteria, e.g. income and
  assets) and its legal clock: not in the reference. The 행정복지센터 decides, within the business
  days every handoff to it has (``registry.catalog.DUE_BUSINESS_DAYS``), not a statutory clock.
- UNCERTAIN for complexes run by SH: a move between SH rentals is SH's business (there, the
  주거안심종합센터), not LH's; the table names LH, the landlord of most permanent-rental
  complexes, and the coordinator names the SH centre when LH declines.

Each handoff's due date is its agency type's (LH 10 business days, the others 5), and the
follow-up visit is due a month later. Only codes leave the registry: never amounts or reasons.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from sqlalchemy.orm import Session

from registry import findings
from registry.models import Case

HOUSING_SUPPORT = "housing-support"
KIND = "housing-needs"  # the kind of finding a need is (``registry.findings``)


class Support(NamedTuple):
    """A need as the coordinator reads it (Korean, English), and the handoff that meets it."""

    name_ko: str
    name_en: str
    agency_type: str
    service: str


# One table: need code -> who meets it. Its order is the order of the handoffs and of the CLI's options.
NEEDS: dict[str, Support] = {
    "arrears": Support("임대료·관리비 체납", "rent or management-fee arrears", "private-donor", "arrears-relief"),
    "emergency": Support(
        "긴급 주거비·연료비 (긴급지원)", "emergency housing or fuel cost", "community-center", "emergency-support"
    ),
    "housing-cost": Support(
        "주거비 부담 (주거급여)", "housing cost (housing benefit)", "community-center", "housing-benefit"
    ),
    "moving-cost": Support("이사비", "moving cost", "housing-safety", "moving-cost"),
    "upgrade": Support(
        "주거상향 (반지하·고시원·옥탑방 → 공공임대)",
        "housing upgrade into public rental",
        "housing-safety",
        "housing-upgrade",
    ),
    "transfer": Support("공공임대 간 이동", "move between public rentals", "lh", "rental-transfer"),
    "home-modification": Support(
        "주거약자 편의시설 (거동 불편)", "home modification for limited mobility", "lh", "home-modification"
    ),
    "repairs": Support("집수리", "repairs", "lh", "repairs"),
}


def label(code: str) -> str:
    """A need as people read it: Korean, then English."""
    need = NEEDS[code]
    return f"{need.name_ko} ({need.name_en})"


def needs_of(session: Session, case: Case) -> tuple[str, ...]:
    """The case's needs still to be met, in the table's order."""
    return findings.codes_of(session, case, KIND, NEEDS)


def record_needs(session: Session, case: Case, needs: Mapping[str, bool], *, by: str) -> tuple[str, ...]:
    """Add (True) or remove (False, e.g. settled) needs of a housing-support case; returns the needs now.

    Needs not named keep what was recorded, so a second round records only what changed.
    """
    return findings.record(session, case, KIND, needs, known=NEEDS, intervention=HOUSING_SUPPORT, by=by)


def handoff_waves(codes: Iterable[str]) -> list[list[Support]]:
    """The needs' handoffs in waves, no two of one agency type in a wave.

    A wave is one step of parallel handoffs, and a step asks each agency once: two needs of one
    type in it (repairs and a home modification, both LH) would send the second to another LH
    office. So the second need of a type goes in the next wave, to the same first-ranked agency.
    """
    waves: list[list[Support]] = []
    wanted = set(codes)
    for code, support in NEEDS.items():
        if code not in wanted:
            continue
        wave = next((w for w in waves if all(s.agency_type != support.agency_type for s in w)), None)
        if wave is None:
            wave = []
            waves.append(wave)
        wave.append(support)
    return waves
