"""What a hoarding case's home visit can find, and what each finding sets in motion.

The coordinator goes on the joint home visit (초기상담 공동 가정방문) and records the findings as
codes (``yeongye hoarding findings``), then confirms them (``yeongye approve``). The flow branches on
them (``flows/hoarding``). Facts:
- Guardianship: in the study's table 2 the 노인보호전문기관 "intervenes in the procedure to appoint an
  adult guardian (성년후견인 지정 절차 개입)"; its F-complex case (dementia) needed one exactly
  because there was none. Under 민법 §9① a 지방자치단체의 장 may petition the family court for a
  성년후견 when no one else does, so the district office is asked beside the 노인보호전문기관.
  A coordinator's finding opens it, never the signature on a consent form: a resident who cannot
  decide and has no one to decide for them cannot sign anything yet.
  UNCERTAIN: the reference (korea_domain.md) does not cover the public-guardianship schemes
  (치매관리법 §12조의3 for dementia, others for other grounds) or their clocks; the agencies answer
  on their type's business days.
- Police (study table 2): escort to the hospital at an admission and help with its papers
  (병원 입원 동행, 관계 서류 서명 등 행정업무 지원), and "other cooperation to prevent safety
  incidents" (기타 안전사고 예방 협조), here at the cleaning when the visit found a risk.
- Crisis: a person in danger to self or others is admitted by the law's own procedure, in a case
  of its own: emergency admission (정신건강복지법 §50) when it cannot wait, administrative
  admission (§44) otherwise. The hoarding case opens it, links it and goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from sqlalchemy.orm import Session

from registry import findings
from registry.cases import CaseError
from registry.models import Case

HOARDING = "hoarding"
KIND = "home-visit"  # the kind of finding these are (``registry.findings``)

CRISIS_EMERGENCY = "crisis-emergency"
CRISIS_ADMINISTRATIVE = "crisis-administrative"
LACKS_CAPACITY = "lacks-capacity"
NO_GUARDIAN = "no-guardian"
SAFETY_RISK = "safety-risk"


class Finding(NamedTuple):
    name_ko: str
    name_en: str


# One table: the codes a home visit can record, in the order the CLI lists them.
FINDINGS: dict[str, Finding] = {
    CRISIS_EMERGENCY: Finding(
        "자타해 위험이 급박함 → 응급입원 사례 (정신건강복지법 §50)",
        "imminent danger to self or others → emergency-admission case (§50)",
    ),
    CRISIS_ADMINISTRATIVE: Finding(
        "정신질환으로 자타해 위험이 의심됨 → 행정입원 사례 (§44)",
        "suspected mental illness with danger → administrative-admission case (§44)",
    ),
    LACKS_CAPACITY: Finding("의사결정능력이 부족함", "lacks decision-making capacity"),
    NO_GUARDIAN: Finding("후견인도 보호의무자도 없음", "no guardian and no family to decide"),
    SAFETY_RISK: Finding(
        "청소 중 안전사고 우려 → 경찰 협조", "risk of a safety incident at the cleaning → police support"
    ),
}

# The intervention each crisis opens for the resident.
ADMISSIONS = {CRISIS_EMERGENCY: "emergency-admission", CRISIS_ADMINISTRATIVE: "administrative-admission"}


def label(code: str) -> str:
    finding = FINDINGS[code]
    return f"{finding.name_ko} ({finding.name_en})"


def findings_of(session: Session, case: Case) -> tuple[str, ...]:
    return findings.codes_of(session, case, KIND, FINDINGS)


def record_findings(session: Session, case: Case, changes: Mapping[str, bool], *, by: str) -> tuple[str, ...]:
    """Record what the home visit found (True) or no longer holds (False); returns what holds now.

    One crisis at a time: an emergency and an administrative admission are two readings of one
    danger, and the coordinator must choose.
    """
    before = set(findings_of(session, case)) if case.intervention == HOARDING else set()
    after = {code for code in FINDINGS if changes.get(code, code in before)}
    if {CRISIS_EMERGENCY, CRISIS_ADMINISTRATIVE} <= after:
        raise CaseError(
            "--emergency/--administrative: 응급입원과 행정입원 중 하나만 기록합니다 "
            "(record one of emergency and administrative admission)"
        )
    return findings.record(session, case, KIND, changes, known=FINDINGS, intervention=HOARDING, by=by)


class Consequences(NamedTuple):
    """What the findings set in motion, as the flow reads them (codes and flags only)."""

    admission: str  # the intervention of the admission case to open, or ""
    guardianship: bool  # lacks capacity and no one to decide: the guardianship handoff
    police_at_cleaning: bool


def consequences(codes: tuple[str, ...]) -> Consequences:
    admission = next((ADMISSIONS[code] for code in codes if code in ADMISSIONS), "")
    return Consequences(
        admission=admission,
        guardianship=LACKS_CAPACITY in codes and NO_GUARDIAN in codes,
        police_at_cleaning=SAFETY_RISK in codes,
    )
