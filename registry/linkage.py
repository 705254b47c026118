"""The linkage verb: a referral of one resident to any agency type, for a named service.

Most of what a housing welfare worker does is exactly this (the study's most common linkage:
care, smoking-cessation counselling, donations …), and it must reach every agency type of the
catalogue, not only those a specialised flow names. The type and the service are codes from the
catalogue (``registry.catalog``); they travel to Prefect as the flow's parameters, nothing else.
"""

from __future__ import annotations

from registry.cases import CaseError
from registry.catalog import AGENCY_TYPE_CODES, SERVICES

LINKAGE = "linkage"


def check_launch(intervention: str, agency_type: str | None, service: str | None) -> dict[str, str]:
    """The flow parameters of a linkage launch, or a ``CaseError`` naming the option.

    Only the linkage intervention takes a type and a service, and it needs both.
    """
    if intervention != LINKAGE:
        given = [name for name, value in (("type", agency_type), ("service", service)) if value is not None]
        if given:
            raise CaseError(f"--{given[0]}: 기관 연계({LINKAGE})에만 씁니다 (only for {LINKAGE})")
        return {}
    if not agency_type or agency_type not in AGENCY_TYPE_CODES:
        raise CaseError(
            "--type: 기관 유형 코드가 필요합니다, 예: welfare-center "
            f"(an agency type; see yeongye agencies): {agency_type or ''}"
        )
    if not service or service not in SERVICES:
        raise CaseError(f"--service: 서비스 코드가 필요합니다 (a service code; see yeongye services): {service or ''}")
    return {"agency_type": agency_type, "service": service}
