"""응급입원 (emergency admission, 정신건강복지법 §50), as the coordinator draws it on the whiteboard.

at the scene, in minutes: the finder's request with a doctor's and a police officer's consent,
the escort by the police or 119, the admission (one record, each with its time) → the hospital's
written notice to the guardian → hold of at most 3 days from the admission, its first day counted
and 공휴일 not → converted to another type of admission, or discharged (reported, or when the hold
runs out) → aftercare.

The housing welfare worker who found the person coordinates; the flow records who did what and
when, tells the agencies involved and keeps the legal clock. It never acts for the hospital: the
hospital holds, diagnoses (§50④), notifies and discharges, and reports each to the flow. Rules and
dates: shared/reference/korea_domain.md §1.3 and registry/mental_health.py.
"""

from __future__ import annotations

from prefect import flow

from flows.mental_health.aftercare import aftercare, finish
from registry.mental_health import ADMITTED, EMERGENCY_HOLD_BASIS, SCENE_STAGE, EmergencyClock
from tasks import waits
from tasks.case import check_case, enter_stage, publish_timeline
from tasks.handoffs import Need, ask, await_outcome
from tasks.legal_clocks import (
    ESCORT_REPORT,
    OnScene,
    emergency_clock_origin,
    record_emergency_scene,
    start_emergency_clock,
)
from tasks.referrals import Notice, record_legal_basis

# §50 lets those who take part in the emergency admission learn who the person is.
EMERGENCY_BASIS = "정신건강복지법 §50"
INVOLVED_AGENCY_TYPES = ["police", "fire-119", "psychiatric-hospital", "district-office"]
NOTICE_BASIS = "정신건강복지법 §50⑥"

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
    if emergency_clock_origin(case_ref) == ESCORT_REPORT:
        return _reported_step_by_step(case_ref)

    # §50①②: the finder asks for the admission with a doctor's and a police officer's consent, and
    # the officer or a 119 crew takes the person to the hospital. The coordinator records it all
    # at once, each with its time; the hold runs from the recorded admission (§50③).
    scene = _on_scene(case_ref)
    if scene.outcome != ADMITTED or scene.clock is None:
        return finish(case_ref, scene.outcome)
    return _hold(case_ref, scene.clock, scene.hospital, EMERGENCY_HOLD_BASIS)


def _on_scene(case_ref: str) -> OnScene:
    """Wait for the coordinator's on-scene record; one the registry cannot use is audited and asked again."""
    enter_stage(case_ref, SCENE_STAGE)
    publish_timeline(case_ref, SCENE_STAGE)

    def recorded(form: waits.EmergencyScene, wait: str) -> OnScene | waits.Again:
        scene = record_emergency_scene(case_ref, wait, form.entry(), form.reason_note, form.act)
        return waits.AGAIN if scene is None else scene

    scene, _turn = waits.ask_until_valid(
        case_ref,
        waits.wait_key("scene"),
        waits.EmergencyScene,
        f"**{case_ref}** · 응급입원 현장 기록: 의뢰, 의사·경찰관 동의, 호송, 입원, 각각의 시각 (서울) "
        "(the on-scene record: request, consents, escort, admission, each with its time). "
        f"명령줄: `yeongye emergency scene {case_ref}`",
        recorded,
    )
    return scene


def _hold(case_ref: str, clock: EmergencyClock, hospital: str | None, hold_basis: str) -> str:
    """The hospital's notice to the guardian and its report on the hold, then what follows it."""
    # §50⑥: without delay the hospital tells the guardian in writing why, for how long and where.
    # It comes before the hold's report so that it is given while the hold runs, not after it.
    notice = await_outcome(
        case_ref,
        "guardian-notice",
        Need("psychiatric-hospital", "guardian-notice", hospital),
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
        legal_basis=hold_basis,
    )
    if hold.outcome in CONVERSIONS:
        return finish(case_ref, hold.outcome)  # the hospital takes the steps of the new admission type
    if hold.status == "failed":  # no report by the end of the hold: the person must be discharged (§50⑤, §86)
        return aftercare(case_ref, "discharged-at-deadline")
    # Discharged on the psychiatrist's diagnosis, or the hospital declined to hold the person.
    return aftercare(case_ref, "discharged" if hold.outcome == "discharged" else "hold-declined")


# --- a case begun before the on-scene record ------------------------------------------------------
# Its run has answered some of these waits already and replays them in this order, with these
# inputs; keep them unchanged until no case begun before the on-scene record is open.

STEP_BY_STEP_HOLD_BASIS = "정신건강복지법 §50③"
POLICE_ESCORTS, FIRE_119_ESCORTS = "consented-police-escort", "consented-119-escort"
POLICE_OUTCOMES = (POLICE_ESCORTS, FIRE_119_ESCORTS, "refused")
ESCORT_OUTCOMES = ("admitted", "not-admitted")


def _reported_step_by_step(case_ref: str) -> str:
    """The doctor's consent as a decision, the officer's and the escort as reports, the hold from the escort's day."""
    if not ask(case_ref, "doctor-consent", "emergency-doctor-consent", approver_role="coordinator"):
        return finish(case_ref, "no-doctor-consent")
    police = await_outcome(case_ref, "police-consent", Need("police", "emergency-consent"), outcomes=POLICE_OUTCOMES)
    if police.outcome not in (POLICE_ESCORTS, FIRE_119_ESCORTS):
        return finish(case_ref, "no-police-consent")
    escort_by = (
        Need("police", "escort", police.agency_id) if police.outcome == POLICE_ESCORTS else Need("fire-119", "escort")
    )
    escort = await_outcome(case_ref, "escort", escort_by, outcomes=ESCORT_OUTCOMES)
    if escort.outcome != "admitted":
        return finish(case_ref, "not-admitted")
    # Its clock: the first-day reading if computed now, or as persisted before it; its basis names no reading.
    return _hold(case_ref, start_emergency_clock(case_ref), None, STEP_BY_STEP_HOLD_BASIS)
