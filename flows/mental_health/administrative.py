"""행정입원 (administrative admission, 정신건강복지법 §44), as the coordinator draws it on the whiteboard.

application by the 정신건강복지센터 → the district head refers for diagnosis at once → diagnostic
admission of at most 2 weeks → notice to the guardian → report to the 입원적합성심사위원회 within 3
days → two psychiatrists: unanimous → treatment admission, split → discharge → notice to patient
and guardian with the right to a review → the committee's decision within 1 month → release
within 3 months of the first day, unless the review board extends it → discharge → aftercare.

The housing welfare worker is no applicant. Only a psychiatrist or a 정신건강전문요원 may apply, and
the police may only ask them to (§44①②), so the application goes through the centre. The district
head, the hospital and the committees act; the flow records their reports and keeps every clock
(registry/mental_health.py; shared/reference/korea_domain.md §1.2).
"""

from __future__ import annotations

import datetime as dt

from prefect import flow

from flows.mental_health.aftercare import aftercare, finish
from tasks.case import check_case, enter_stage, publish_timeline
from tasks.handoffs import Need, await_outcome
from tasks.legal_clocks import due_without_delay, extend_admission, start_administrative_clock
from tasks.referrals import Notice, record_legal_basis

# §44 lets those who take part in the admission learn who the person is.
ADMINISTRATIVE_BASIS = "정신건강복지법 §44"
INVOLVED_AGENCY_TYPES = ["mental-health-center", "district-office", "designated-hospital"]
# §45: the report to the committee names the person; §62②: so does the extension review.
COMMITTEE_BASIS = "정신건강복지법 §45"
REVIEW_BOARD_BASIS = "정신건강복지법 §62②"


@flow(
    name="administrative-admission",
    flow_run_name="{case_ref} administrative-admission 행정입원",
    persist_result=True,
)
def administrative_admission(case_ref: str) -> str:
    """Run one administrative admission from the application to closure; returns its outcome."""
    check_case(case_ref, "administrative-admission")
    enter_stage(case_ref, "intake")
    record_legal_basis(case_ref, INVOLVED_AGENCY_TYPES, ADMINISTRATIVE_BASIS)
    publish_timeline(case_ref, "intake")

    # §44①②: a 정신건강전문요원 of the centre assesses the person and applies to the district head.
    application = await_outcome(
        case_ref,
        "application",
        Need("mental-health-center", "admin-application"),
        outcomes=("applied", "not-applied"),
    )
    if application.outcome != "applied":
        return finish(case_ref, "not-applied")

    # §44③④: the district head refers the person to a psychiatrist at once, and orders a
    # diagnostic admission if the psychiatrist finds a risk that needs an accurate diagnosis.
    ordered = await_outcome(
        case_ref,
        "diagnosis-referral",
        Need("district-office", "diagnosis-referral"),
        outcomes=("admission-ordered", "no-admission-needed"),
        due=due_without_delay(case_ref, "diagnosis-referral"),
        legal_basis="정신건강복지법 §44③",
    )
    if ordered.outcome != "admission-ordered":
        return finish(case_ref, "no-diagnostic-admission")

    # §44④: the designated hospital reports the admission; its day is the first day of every clock.
    admitted = await_outcome(
        case_ref,
        "diagnostic-admission",
        Need("designated-hospital", "diagnostic-admission"),
        outcomes=("admitted", "not-admitted"),
        due=due_without_delay(case_ref, "diagnostic-admission"),
        legal_basis="정신건강복지법 §44④",
    )
    if admitted.outcome != "admitted":
        return finish(case_ref, "not-admitted")
    clock = start_administrative_clock(case_ref)
    hospital = admitted.agency_id

    # §44⑤: without delay the district head tells the guardian in writing why, for how long and where.
    await_outcome(
        case_ref,
        "guardian-notice",
        Need("district-office", "guardian-notice"),
        due=due_without_delay(case_ref, "guardian-notice"),
        legal_basis="정신건강복지법 §44⑤",
        notice=_notice(
            "notice_guardian",
            "정신건강복지법 §44⑤",
            "diagnostic-admission",
            clock.first_day,
            clock.diagnostic_end,
            hospital,
        ),
    )

    # §45: the hospital reports the admission to the committee within 3 days, counted as business days
    # after the first day: the hospital practice noted in the reference (§6.4), not the statute's words.
    await_outcome(
        case_ref,
        "appropriateness-report",
        Need("designated-hospital", "appropriateness-report", hospital),
        due=clock.report_due,
        legal_basis="정신건강복지법 §45",
    )

    # §44⑥⑦: two or more psychiatrists examine the person within the 2 weeks; only unanimous
    # findings let the district head continue the admission for treatment.
    findings = await_outcome(
        case_ref,
        "findings",
        Need("designated-hospital", "diagnostic-admission", hospital),
        outcomes=("unanimous", "split"),
        due=clock.diagnostic_end,
        legal_basis="정신건강복지법 §44⑥⑦",
    )
    if findings.outcome != "unanimous":
        ended = "discharged-split-findings" if findings.outcome == "split" else "discharged-at-diagnostic-end"
        return aftercare(case_ref, ended)

    # §44⑧: the patient and the guardian learn in writing why and how long, and that they may ask for a review.
    await_outcome(
        case_ref,
        "admission-notice",
        Need("district-office", "admission-notice"),
        due=due_without_delay(case_ref, "admission-notice"),
        legal_basis="정신건강복지법 §44⑧",
        notice=_notice(
            "notice_admission",
            "정신건강복지법 §44⑧",
            "treatment-admission",
            clock.first_day,
            clock.release_due,
            hospital,
        ),
    )

    # §46–§47: the committee decides within 1 month of the first admission; 부적합 means discharge.
    record_legal_basis(case_ref, ["admission-review-committee"], COMMITTEE_BASIS)
    review = await_outcome(
        case_ref,
        "appropriateness-review",
        Need("admission-review-committee", "appropriateness-review"),
        outcomes=("appropriate", "inappropriate"),
        due=clock.committee_due,
        legal_basis="정신건강복지법 §47③",
    )
    if review.outcome == "inappropriate":
        return aftercare(case_ref, "discharged-inappropriate")

    return aftercare(case_ref, release(case_ref, clock.release_due, hospital))


def release(case_ref: str, period_end: dt.date, hospital: str) -> str:
    """§62: release by ``period_end`` (3 months from the first day), unless the review board extends it.

    Each extension follows a review (§62②): the first adds at most 3 months, each later one 6, and
    the patient and the guardian are told in writing (§62③). A review that does not come by the
    last day of the period lets the period end: the person is released.
    """
    record_legal_basis(case_ref, ["mh-review-board"], REVIEW_BOARD_BASIS)
    extension = 0
    while True:
        review = await_outcome(
            case_ref,
            f"release-review-{extension + 1}",
            Need("mh-review-board", "release-review"),
            outcomes=("extended", "released"),
            due=period_end,
            legal_basis="정신건강복지법 §62①②",
        )
        if review.outcome != "extended":
            return "released" if review.outcome == "released" else "released-at-deadline"
        extension += 1
        first_day = period_end + dt.timedelta(days=1)
        period_end = extend_admission(case_ref, period_end, extension)
        await_outcome(
            case_ref,
            f"extension-notice-{extension}",
            Need("district-office", "admission-notice"),
            due=due_without_delay(case_ref, f"extension-notice-{extension}"),
            legal_basis="정신건강복지법 §62③",
            notice=_notice("notice_admission", "정신건강복지법 §62③", "extension", first_day, period_end, hospital),
        )


def _notice(template: str, provision: str, reason: str, first: dt.date, last: dt.date, place: str) -> Notice:
    return Notice(template, provision, reason, first.isoformat(), last.isoformat(), place)
