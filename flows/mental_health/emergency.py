"""응급입원 (emergency admission, 정신건강복지법 §50), as the coordinator draws it on the whiteboard.

finder's request with a doctor's and a police officer's consent → escort by the police or 119 →
the hospital's written notice to the guardian → hold of at most 3 days, 공휴일 not counted →
converted to another type of admission, or discharged (reported, or when the hold runs out) →
aftercare.

The housing welfare worker who found the person coordinates; the flow records who did what and
when, tells the agencies involved and keeps the legal clock. It never acts for the hospital: the
hospital holds, diagnoses (§50④), notifies and discharges, and reports each to the flow. Rules and
dates: shared/reference/korea_domain.md §1.3 and registry/mental_health.py.
"""

from __future__ import annotations

from prefect import flow

from flows.mental_health.aftercare import aftercare, finish
from tasks.case import check_case, enter_stage, publish_timeline
from tasks.handoffs import Need, ask, await_outcome
from tasks.legal_clocks import start_emergency_clock
from tasks.referrals import Notice, record_legal_basis

# §50 lets those who take part in the emergency admission learn who the person is.
EMERGENCY_BASIS = "정신건강복지법 §50"
INVOLVED_AGENCY_TYPES = ["police", "fire-119", "psychiatric-hospital", "district-office"]
HOLD_BASIS = "정신건강복지법 §50③"
NOTICE_BASIS = "정신건강복지법 §50⑥"

# The police officer consents (and says who escorts) or does not.
POLICE_ESCORTS, FIRE_119_ESCORTS = "consented-police-escort", "consented-119-escort"
POLICE_OUTCOMES = (POLICE_ESCORTS, FIRE_119_ESCORTS, "refused")
ESCORT_OUTCOMES = ("admitted", "not-admitted")
# §50⑤: the psychiatrist's diagnosis (§50④) decides: another type of admission (§41–§44), or discharge.
CONVERSIONS = ("converted-voluntary", "converted-consent", "converted-guardian", "converted-administrative")
HOLD_OUTCOMES = (*CONVERSIONS, "discharged")


@flow(name="emergency-admission", flow_run_name="{case_ref} emergency-admission 응급입원", persist_result=True)
def emergency_admission(case_ref: str) -> str:
    """Run one emergency admission from the finder's request to closure; returns its outcome."""
    check_case(case_ref, "emergency-admission")
    enter_stage(case_ref, "intake")
    record_legal_basis(case_ref, INVOLVED_AGENCY_TYPES, EMERGENCY_BASIS)
    publish_timeline(case_ref, "intake")

    # §50①: the finder asks for the admission, with the consent of a doctor and of a police officer.
    # The doctor is not an agency of the district: the coordinator records the consent given.
    if not ask(case_ref, "doctor-consent", "emergency-doctor-consent", approver_role="coordinator"):
        return finish(case_ref, "no-doctor-consent")
    police = await_outcome(case_ref, "police-consent", Need("police", "emergency-consent"), outcomes=POLICE_OUTCOMES)
    if police.outcome not in (POLICE_ESCORTS, FIRE_119_ESCORTS):
        return finish(case_ref, "no-police-consent")

    # §50②: the consenting officer, or the 119 crew, takes the person to the psychiatric hospital.
    escort_by = (
        Need("police", "escort", police.agency_id) if police.outcome == POLICE_ESCORTS else Need("fire-119", "escort")
    )
    escort = await_outcome(case_ref, "escort", escort_by, outcomes=ESCORT_OUTCOMES)
    if escort.outcome != "admitted":
        return finish(case_ref, "not-admitted")

    # The hold starts on the day the person was admitted: at most 3 days, 공휴일 not counted (§50③).
    clock = start_emergency_clock(case_ref)

    # §50⑥: without delay the hospital tells the guardian in writing why, for how long and where.
    # It comes before the hold's report so that it is given while the hold runs, not after it.
    notice = await_outcome(
        case_ref,
        "guardian-notice",
        Need("psychiatric-hospital", "guardian-notice"),
        due=clock.notice_due,
        legal_basis=NOTICE_BASIS,
        notice=Notice(
            "notice_guardian",
            NOTICE_BASIS,
            "emergency-admission",
            clock.admitted.isoformat(),
            clock.hold_end.isoformat(),
        ),
    )

    # §50④⑤: the hospital reports the psychiatrist's conclusion by the end of the hold.
    hold = await_outcome(
        case_ref,
        "hold",
        Need("psychiatric-hospital", "emergency-hold", notice.agency_id or None),
        outcomes=HOLD_OUTCOMES,
        due=clock.hold_end,
        legal_basis=HOLD_BASIS,
    )
    if hold.outcome in CONVERSIONS:
        return finish(case_ref, hold.outcome)  # the hospital takes the steps of the new admission type
    if hold.status == "failed":  # no report by the end of the hold: the person must be discharged (§50⑤, §86)
        return aftercare(case_ref, "discharged-at-deadline")
    # Discharged on the psychiatrist's diagnosis, or the hospital declined to hold the person.
    return aftercare(case_ref, "discharged" if hold.outcome == "discharged" else "hold-declined")
