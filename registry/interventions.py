"""The catalogue of yeongye's flows: each one's name, where its code is, and how people call it.

One table names every flow. The name is at once the ``@flow`` name, the deployment's name in
``prefect.yaml`` and, for an intervention, the case's ``intervention``; the entrypoint is the one
``prefect.yaml`` deploys and the warm executor (``yeongye.forkserver``) imports.
``tests/test_catalogue.py`` checks ``prefect.yaml`` and the flows against it.
"""

from __future__ import annotations

from typing import NamedTuple


class FlowEntry(NamedTuple):
    name: str
    entrypoint: str  # "path/to/module.py:function", as prefect.yaml writes it
    label_ko: str
    label_en: str
    opens_cases: bool  # an intervention: each flow run is one case; otherwise a scheduled sweep

    @property
    def module(self) -> str:
        """The entrypoint as an importable module name (``flows.hoarding.flow``)."""
        return self.entrypoint.split(":")[0].removesuffix(".py").replace("/", ".")

    @property
    def function(self) -> str:
        return self.entrypoint.split(":")[1]


CATALOGUE: tuple[FlowEntry, ...] = (
    FlowEntry("hoarding", "flows/hoarding/flow.py:hoarding", "저장강박 주거환경개선", "hoarding remediation", True),
    FlowEntry(
        "emergency-admission",
        "flows/mental_health/emergency.py:emergency_admission",
        "응급입원",
        "emergency admission",
        True,
    ),
    FlowEntry(
        "administrative-admission",
        "flows/mental_health/administrative.py:administrative_admission",
        "행정입원",
        "administrative admission",
        True,
    ),
    FlowEntry(
        "mh-counselling",
        "flows/mental_health/counselling.py:mh_counselling",
        "정신건강 상담 연계",
        "mental-health counselling",
        True,
    ),
    FlowEntry(
        "dementia-screening",
        "flows/mental_health/dementia.py:dementia_screening",
        "치매 조기검진 연계",
        "dementia screening",
        True,
    ),
    # A partner programme for a whole complex (registry.programs.KINDS says which one).
    FlowEntry("program", "flows/programs/flow.py:program", "협력 프로그램", "partner programme", True),
    # A first visit to a resident the detection sweep flagged (registry.detection).
    FlowEntry("outreach", "flows/outreach/flow.py:outreach", "안부확인", "outreach / safety check", True),
    FlowEntry("job-placement", "flows/jobs/flow.py:job_placement", "일자리 연계", "job placement", True),
    # A referral to any agency type for a named service (registry.linkage).
    FlowEntry("linkage", "flows/linkage/flow.py:linkage", "기관 연계", "linkage to an agency", True),
    # Help with housing itself: arrears, housing costs, a move, home modification (registry.housing).
    FlowEntry("housing-support", "flows/housing/flow.py:housing_support", "주거지원", "housing support", True),
    FlowEntry("detection-sweep", "flows/detection/flow.py:detection_sweep", "위기가구 발굴", "detection sweep", False),
    FlowEntry("deadlines", "flows/deadlines/flow.py:deadlines", "기한 점검", "deadline sweep", False),
)

INTERVENTIONS = tuple(entry.name for entry in CATALOGUE if entry.opens_cases)
