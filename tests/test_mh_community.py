"""Community mental health: counselling and dementia screening, driven end to end.

Each case runs in this process against the real Prefect server, SMTP server and registry, and is
answered the way people would answer it (``yeongye respond`` / ``approve``). The mind-health
programme is one kind of partner programme: ``tests/test_programs.py``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from prefect import Flow
from sqlalchemy import select

from flows.mental_health import counselling, dementia
from registry import calendar
from registry.catalog import SERVICES
from registry.db import Database
from registry.models import AuditEntry, Case, Referral, Resident
from tests.conftest import every_backend
from tests.driving import Answers, assert_not_in_prefect, coordinator_of, drive, read_case, referral_steps
from yeongye import steering
from yeongye.mailcapture import MailCapture, read_captured


def _run(
    db: Database, flow: Flow[..., Any], complex_code: str, resident: str | None, **script: Any
) -> tuple[Answers, Case]:
    """Deploy the flow, launch a case as `yeongye launch` does, and answer it until it finishes."""
    flow.to_deployment(name=flow.name).apply()
    launched = steering.launch(
        db,
        intervention=flow.name,
        complex_code=complex_code,
        resident_ref=resident,
        by=coordinator_of(db, complex_code),
    )
    answers = Answers(db, launched.case_ref, **script)
    final = drive(answers, launched.flow_run_id, flow=flow, max_waits=30)
    assert final.state is not None and final.state.is_completed(), final.state
    return answers, read_case(db, launched.case_ref)


def _mail(mail: MailCapture, case_ref: str, step: str, agency_id: str) -> tuple[str, str]:
    """(subject, text) of the one email a step sent an agency."""
    found = [m for m in read_captured(mail.mail_dir) if m.headers["X-Yeongye-Key"] == f"{case_ref}:{step}:{agency_id}"]
    assert len(found) == 1, (step, agency_id, len(found))
    return found[0].subject, found[0].text


def _resident(db: Database, ref: str) -> Resident:
    with db.transaction() as session:
        resident = session.get(Resident, ref)
        assert resident is not None
        return resident


# --- counselling -------------------------------------------------------------------------------


@every_backend
def test_counselling_re_approach_then_consent_discloses_only_to_the_consented(
    prefect_server: None, registry: Database, mail: MailCapture, results_dir: Path
) -> None:
    """Refused once: the management office visits knowing neither who nor what for. Consent given
    at the re-approach: the centre learns who and why, and the disclosure is audited."""
    consents = iter([(False, "resident"), (True, "resident")])
    answers, case = _run(
        registry,
        counselling.mh_counselling,
        "D",
        "R-D-001",
        on_consent=lambda wait: next(consents),
        outcomes={"counselling": counselling.REGISTERED},
    )

    assert (case.status, case.outcome) == ("closed", "registered-at-centre")
    assert [k for k in answers.waits if k.startswith("consent")] == ["consent-1", "consent-2"]
    assert referral_steps(registry, case) == {
        "re-approach-1": ("gaon-mgmt-1", "completed", None),
        "counselling": ("gaon-mhwc-1", "completed", "registered"),
        "follow-up-1m": ("gaon-mgmt-1", "completed", None),
    }
    resident = _resident(registry, "R-D-001")
    personal = [resident.name, resident.phone, resident.unit]
    health = [SERVICES["mh-counselling"][0], "정신건강", "mh-counselling", "counselling"]

    subject, text = _mail(mail, case.ref, "re-approach-1", "gaon-mgmt-1")
    for needle in personal + health:
        assert needle not in subject + text, needle
    subject, text = _mail(mail, case.ref, "counselling", "gaon-mhwc-1")
    assert all(needle in text for needle in personal)
    assert SERVICES["mh-counselling"][0] in subject + text

    with registry.transaction() as session:
        disclosures = [
            a.detail
            for a in session.scalars(
                select(AuditEntry).where(AuditEntry.case_id == case.id, AuditEntry.action == "disclosure")
            )
        ]
    centre = [d for d in disclosures if d["agency"] == "gaon-mhwc-1"]
    assert len(centre) == 1 and centre[0]["basis"] == "written-consent" and "health" in centre[0]["fields"]
    # The management office is told once, at the follow-up after consent, never at the re-approach.
    assert [d["agency"] for d in disclosures].count("gaon-mgmt-1") == 1

    assert_not_in_prefect(personal, results_dir)


def test_counselling_consent_refused_twice_closes_without_the_centre(
    prefect_server: None, registry: Database, mail: MailCapture
) -> None:
    answers, case = _run(
        registry, counselling.mh_counselling, "B", "R-B-002", on_consent=lambda wait: (False, "resident")
    )

    assert case.outcome == "consent-refused-monitoring"
    assert set(referral_steps(registry, case)) == {"re-approach-1"}
    assert not any(to.startswith("mhwc") for m in read_captured(mail.mail_dir) for to in m.to)


def test_counselling_declined_by_resident_is_monitored_then_closed(prefect_server: None, registry: Database) -> None:
    _answers, case = _run(
        registry,
        counselling.mh_counselling,
        "A",
        "R-A-002",
        outcomes={"counselling": counselling.DECLINED_BY_RESIDENT},
    )

    assert case.outcome == "counselling-declined"
    assert referral_steps(registry, case) == {
        "counselling": ("gaon-mhwc-1", "completed", "declined-by-resident"),
        "monitoring": ("gaon-mgmt-1", "completed", None),
    }


def test_counselling_declined_by_the_centre_goes_to_the_supervisor(prefect_server: None, registry: Database) -> None:
    _answers, case = _run(
        registry, counselling.mh_counselling, "C", "R-C-001", rejections={"counselling": "관할 외 (outside our area)"}
    )

    assert case.outcome == "counselling-not-linked"
    assert referral_steps(registry, case) == {"counselling": ("gaon-mhwc-1", "rejected", None)}


def test_every_counselling_outcome_closes_the_case_with_a_named_outcome() -> None:
    assert set(counselling.CASE_OUTCOMES) == set(counselling.OUTCOMES)
    assert all(len(outcome) <= 32 for outcome in counselling.CASE_OUTCOMES.values())  # Case.outcome


# --- dementia screening ------------------------------------------------------------------------


def test_dementia_normal_result_plans_a_re_screen_in_a_year(prefect_server: None, registry: Database) -> None:
    _answers, case = _run(
        registry, dementia.dementia_screening, "D", "R-D-002", outcomes={"screening": dementia.NORMAL}
    )

    assert case.outcome == "screening-normal"
    steps = referral_steps(registry, case)
    assert steps == {
        "screening": ("gaon-dementia-1", "completed", "normal"),
        "re-screen-12m": ("gaon-dementia-1", "completed", None),
    }
    with registry.transaction() as session:
        due = session.scalar(select(Referral.due_date).where(Referral.step == "re-screen-12m"))
    assert due is not None and due >= calendar.today(calendar.SystemClock()) + dt.timedelta(days=360)


@pytest.mark.parametrize(
    ("result", "follow_ups"),
    [(dementia.COGNITIVE_DECLINE, {"follow-up-3m"}), (dementia.DEMENTIA_SUSPECTED, {"follow-up-1m", "follow-up-3m"})],
)
def test_dementia_result_not_normal_goes_to_diagnosis_and_follow_ups(
    prefect_server: None, registry: Database, result: str, follow_ups: set[str]
) -> None:
    _answers, case = _run(registry, dementia.dementia_screening, "D", "R-D-003", outcomes={"screening": result})

    assert case.outcome == result
    steps = referral_steps(registry, case)
    assert steps.pop("screening") == ("gaon-dementia-1", "completed", result)
    assert steps.pop("diagnosis") == ("gaon-dementia-1", "completed", None)
    assert set(steps) == follow_ups
    assert {agency for agency, _status, _outcome in steps.values()} == {"gaon-mgmt-1"}
