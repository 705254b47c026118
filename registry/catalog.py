"""Reference vocabulary: agency types and the services a handoff can ask for.

The 34 agency types and their 7 groups are those of the 2024 study of six permanent rental complexes
(table 3). Four more appear only in its hoarding table (table 2) and are needed by that flow: LH,
the public health centre, the family support centre and the cleaning cooperative.
"""

from __future__ import annotations

from typing import NamedTuple


class AgencyTypeInfo(NamedTuple):
    code: str
    group: str
    name_ko: str
    name_en: str
    source: str


GROUPS: dict[str, tuple[str, str]] = {
    "public": ("공공기관", "Public institutions"),
    "welfare": ("복지기관", "Welfare institutions"),
    "health": ("보건의료", "Health and medical"),
    "volunteer": ("자원봉사", "Volunteering"),
    "jobs": ("일자리", "Jobs"),
    "meetings": ("모임", "Meetings"),
    "other": ("기타", "Other organisations"),
}

_T3 = "table3"
_T2 = "table2"
_MHA = "mh-act"  # bodies the Mental Health Welfare Act (정신건강복지법) gives a part in admissions

AGENCY_TYPES: tuple[AgencyTypeInfo, ...] = (
    AgencyTypeInfo("district-office", "public", "동·구청", "District / ward office", _T3),
    AgencyTypeInfo("community-center", "public", "행정복지센터", "Administrative welfare centre", _T3),
    AgencyTypeInfo("police", "public", "경찰서/파출소", "Police station / police box", _T3),
    AgencyTypeInfo("management-office", "public", "관리사무소", "Complex management office", _T3),
    AgencyTypeInfo("microfinance", "public", "서민금융진흥원", "Korea Inclusive Finance Agency", _T3),
    AgencyTypeInfo("probation-support", "public", "준법지원센터", "Probation and parole support centre", _T3),
    AgencyTypeInfo("village-community", "public", "마을공동체지원센터", "Village community support centre", _T3),
    AgencyTypeInfo("welfare-center", "welfare", "사회복지관", "Community welfare centre", _T3),
    AgencyTypeInfo("welfare-foundation", "welfare", "복지재단", "Welfare foundation", _T3),
    AgencyTypeInfo("disability-welfare", "welfare", "장애인복지관", "Welfare centre for the disabled", _T3),
    AgencyTypeInfo("elder-protection", "welfare", "노인보호전문기관", "Elder protection agency", _T3),
    AgencyTypeInfo("senior-welfare", "welfare", "노인복지센터", "Senior welfare centre", _T3),
    AgencyTypeInfo("housing-safety", "welfare", "주거안심종합센터", "Housing security centre", _T3),
    AgencyTypeInfo("dream-start", "welfare", "드림스타트", "Dream Start (child support)", _T3),
    AgencyTypeInfo("infinite-care", "welfare", "무한돌봄센터", "Comprehensive care centre", _T3),
    AgencyTypeInfo("probation-office", "welfare", "보호관찰소", "Probation office", _T3),
    AgencyTypeInfo("mental-health-center", "health", "정신건강복지센터", "Mental health welfare centre", _T3),
    AgencyTypeInfo("dementia-center", "health", "치매안심센터", "Dementia relief centre", _T3),
    AgencyTypeInfo("smoking-cessation", "health", "금연지원센터", "Smoking cessation centre", _T3),
    AgencyTypeInfo("addiction-center", "health", "중독관리통합지원센터", "Addiction management centre", _T3),
    AgencyTypeInfo("volunteer-center", "volunteer", "자원봉사센터", "Volunteer centre", _T3),
    AgencyTypeInfo("employment-center", "jobs", "고용센터", "Employment centre", _T3),
    AgencyTypeInfo("women-development-institute", "jobs", "여성능력개발원", "Women's development institute", _T3),
    AgencyTypeInfo("women-development-center", "jobs", "여성능력개발센터", "Women's development centre", _T3),
    AgencyTypeInfo("fifty-plus", "jobs", "50플러스센터", "50 Plus centre", _T3),
    AgencyTypeInfo("self-sufficiency", "jobs", "지역자활센터", "Local self-sufficiency centre", _T3),
    AgencyTypeInfo("senior-club", "jobs", "시니어클럽", "Senior club (senior jobs)", _T3),
    AgencyTypeInfo("social-security-council", "meetings", "지역사회보장협의체", "Local social security council", _T3),
    AgencyTypeInfo("residents-committee", "meetings", "주민자치위원회", "Residents' self-governance committee", _T3),
    AgencyTypeInfo("life-place", "other", "생명의 터", "Suicide prevention shelter", _T3),
    AgencyTypeInfo("home-care", "other", "재가센터", "Home care centre", _T3),
    AgencyTypeInfo("daycare", "other", "어린이집", "Daycare centre", _T3),
    AgencyTypeInfo("culture-foundation", "other", "문화재단", "Culture foundation", _T3),
    AgencyTypeInfo("private-donor", "other", "민간기업·개인", "Private company / individual", _T3),
    AgencyTypeInfo("lh", "public", "한국토지주택공사(LH)", "Korea Land & Housing Corporation (LH)", _T2),
    AgencyTypeInfo("public-health-center", "health", "보건소", "Public health centre", _T2),
    AgencyTypeInfo("family-center", "welfare", "건강가정지원센터", "Healthy family support centre", _T2),
    AgencyTypeInfo("cleaning-coop", "other", "협동조합(청소·방역)", "Cleaning and disinfection cooperative", _T2),
    AgencyTypeInfo("psychiatric-hospital", "health", "정신의료기관", "Psychiatric hospital", _MHA),
    AgencyTypeInfo("designated-hospital", "health", "지정정신의료기관", "Designated psychiatric hospital", _MHA),
    AgencyTypeInfo("fire-119", "public", "119 구급대", "119 ambulance service", _MHA),
    AgencyTypeInfo(
        "admission-review-committee", "health", "입원적합성심사위원회", "Admission appropriateness committee", _MHA
    ),
    AgencyTypeInfo("mh-review-board", "public", "정신건강심사위원회", "Mental health review board", _MHA),
)

AGENCY_TYPE_CODES = frozenset(t.code for t in AGENCY_TYPES)

# Services a handoff can ask for: code -> (Korean, English).
SERVICES: dict[str, tuple[str, str]] = {
    "home-visit": ("초기상담 공동 가정방문", "joint initial home visit"),
    "environment-review": ("주거환경 검토", "review of the living environment"),
    "case-conference": ("통합사례회의 참석", "integrated case conference"),
    "budget": ("예산 지원 및 청소업체 선정", "budget and cleaning-firm selection"),
    "cleaning": ("청소·폐기물 처리·소독", "cleaning, disposal and disinfection"),
    "repairs": ("시설물 보수(주방·화장실 등)", "repairs (kitchen, bathroom ...)"),
    "wallpaper-flooring": ("도배·장판", "wallpaper and flooring"),
    "mental-health": ("정신건강 상담 및 사후관리 등록", "mental-health counselling and aftercare"),
    "treatment-linkage": ("치료기관 연계", "treatment linkage"),
    "guardianship": ("성년후견 지정 절차", "adult guardianship procedure"),
    "guardianship-petition": ("성년후견개시 심판 청구 (민법 §9①)", "petition for adult guardianship (Civil Act §9①)"),
    "admission-escort": ("입원 동행 및 관계 서류 지원", "escort at the admission and help with its papers"),
    "safety-support": ("안전사고 예방 협조 (청소 현장)", "safety support at the cleaning"),
    "supplies-programs": ("생필품 및 프로그램 지원", "supplies and programmes"),
    "counselling-tidying": ("상담 및 정리수납 교육", "counselling and tidying education"),
    "follow-up-visit": ("사후관리 방문", "follow-up visit"),
    "monitoring-visit": ("모니터링 및 재접근 방문", "monitoring and re-approach visit"),
    "emergency-consent": ("응급입원 동의(경찰관)", "consent to emergency admission (police officer)"),
    "escort": ("정신의료기관 호송", "escort to the psychiatric hospital"),
    "emergency-hold": ("응급입원 및 전문의 진단", "emergency admission and psychiatric diagnosis"),
    "guardian-notice": ("보호의무자 서면 통지", "written notice to the guardian"),
    "admin-application": ("진단과 보호 신청(정신건강전문요원)", "application for diagnosis and protection"),
    "diagnosis-referral": ("전문의 진단 의뢰", "referral for psychiatric diagnosis"),
    "diagnostic-admission": ("진단입원 및 전문의 2인 진단", "diagnostic admission and two psychiatrists' findings"),
    "admission-notice": ("입원 통지(환자·보호의무자, 심사청구권 안내)", "admission notice with the right to review"),
    "appropriateness-report": ("입원적합성심사위원회 신고", "report to the admission appropriateness committee"),
    "appropriateness-review": ("입원적합성 심사", "admission appropriateness review"),
    "release-review": ("퇴원 또는 입원기간 연장 심사", "release or extension review"),
    "mh-registration": ("정신건강복지센터 등록·사례관리", "registration and case management at the centre"),
    "support-plan": ("재활·사회적응 지원계획", "rehabilitation and community support plan"),
    "mh-counselling": ("정신건강 상담", "mental-health counselling"),
    "dementia-screening": ("치매 선별검사", "dementia screening"),
    "dementia-follow-up": ("치매 사후관리", "dementia follow-up"),
    "program-planning": ("협력 프로그램 공동 기획·운영", "joint planning and running of a partner programme"),
    "program-report": ("협력 프로그램 결과 보고 확인", "partner programme report (acknowledge)"),
    "safety-check": ("안부확인 방문·전화", "safety check (visit or call)"),
    "door-check": ("관리사무소 동행 세대 문 확인", "door check with the management office"),
    "welfare-check": ("경찰·119 안전 확인(문 개방 포함)", "police / 119 welfare check (entry if needed)"),
    "address-verification": ("주소·실거주 확인", "address and residence verification"),
    "supplies": ("생필품 지원", "supplies"),
    "senior-public-interest": ("노인공익활동사업 참여 신청", "senior public-interest activity (application)"),
    "senior-capability": ("노인역량활용사업 참여 신청", "senior capability job (application)"),
    "senior-job-vacancy": ("노인일자리 결원 충원 (대기자 배치)", "senior job vacancy (from the waiting list)"),
    "complex-job-site": (
        "단지 내 노인일자리 활동처 (세대 방문 동행·소독·정리·단지 환경정비)",
        "job site at the complex (visit escort, disinfection, tidying, grounds)",
    ),
    "job-follow-up": ("일자리 활동 월별 확인", "monthly check of the job"),
    "employment-support": ("국민취업지원제도 참여 신청", "national employment support programme"),
    "self-sufficiency-work": ("자활근로 참여", "self-sufficiency work programme"),
    # What a linkage (registry.linkage) most often asks of an agency (the study's ①: care,
    # smoking-cessation counselling, donations and sharing), and the agency's own services in general.
    "care": ("돌봄 서비스 연계", "care services"),
    "smoking-cessation": ("금연 상담", "smoking-cessation counselling"),
    "donation": ("기부·나눔 연계", "donations and sharing"),
    "service-linkage": ("기관 고유 서비스 연계", "the agency's own services"),
    # What housing support (registry.housing) asks of each agency for one assessed need.
    "arrears-relief": ("임대료·관리비 체납 해소 후원", "relief of rent or management-fee arrears"),
    "emergency-support": ("긴급지원 신청 (주거지원·연료비)", "emergency support (housing cost, fuel cost)"),
    "housing-benefit": ("주거급여 신청", "housing benefit (주거급여) application"),
    "moving-cost": ("이사비 지원", "moving-cost support"),
    "housing-upgrade": ("주거상향 지원 (반지하·고시원·옥탑방 → 공공임대)", "housing upgrade into public rental"),
    "rental-transfer": ("공공임대 주택 간 이동(주거이전) 신청", "transfer to another public rental home"),
    "home-modification": ("주거약자 편의시설 설치 (문턱 제거·안전손잡이 등)", "home modification for accessibility"),
    "housing-check": ("주거 문제 해결 여부 확인 방문", "follow-up visit: is the housing need settled"),
}

# Services whose very name is health information: an agency without consent or a recorded legal
# basis sees a neutral label instead (정신건강복지법 §71, PIPA §23 sensitive data).
HEALTH_SERVICES = frozenset(
    {
        "mental-health",
        "treatment-linkage",
        "emergency-consent",
        "escort",
        "admission-escort",
        "emergency-hold",
        "guardian-notice",
        "admin-application",
        "diagnosis-referral",
        "diagnostic-admission",
        "admission-notice",
        "appropriateness-report",
        "appropriateness-review",
        "release-review",
        "mh-registration",
        "support-plan",
        "mh-counselling",
        "dementia-screening",
        "dementia-follow-up",
    }
)
NEUTRAL_SERVICE = ("사례 지원 협조", "case support")

# Answer time per handoff, in Korean business days: the default, and agency types that differ
# (safety agencies answer the same or next day; building works need time to be scheduled).
# Settings (``YEONGYE_DUE_BUSINESS_DAYS``) override any of them.
DEFAULT_DUE_BUSINESS_DAYS = 5
DUE_BUSINESS_DAYS: dict[str, int] = {
    "police": 1,
    "mental-health-center": 3,
    "lh": 10,
    "probation-support": 10,
    "cleaning-coop": 10,
}


def due_business_days(agency_type: str, overrides: dict[str, int]) -> int:
    """Business days an agency of this type has to answer a handoff."""
    return overrides.get(agency_type, DUE_BUSINESS_DAYS.get(agency_type, DEFAULT_DUE_BUSINESS_DAYS))


def service_label(code: str, language: str) -> str:
    ko, en = SERVICES[code]
    return ko if language == "ko" else en
