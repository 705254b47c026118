"""The linkage verb: any resident can be referred to any agency type of the catalogue, for a named
service, with consent, deadlines, answer links and fallback like every handoff."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from flows.linkage.flow import linkage
from registry.catalog import AGENCY_TYPES
from registry.db import Database
from registry.loader import load_registry
from registry.models import Referral
from tests.driving import Script, coordinator_of, drive, read_case, run_once, token_of
from yeongye import steering
from yeongye.cli import app
from yeongye.mailcapture import MailCapture, read_captured

runner = CliRunner()


def _residents(count: int) -> list[dict[str, Any]]:
    """Residents of complex A for the test alone: one open linkage per resident and intervention."""
    return [
        {
            "ref": f"R-A-{100 + n}",
            "complex_code": "A",
            "name": f"시험 입주민 {n}",
            "phone": "010-0000-0000",
            "building": "101동",
            "unit": f"{100 + n}호",
            "birth_year": 1950,
        }
        for n in range(count)
    ]


def test_every_agency_type_of_the_catalogue_receives_a_referral(
    prefect_server: None, registry: Database, mail: MailCapture
) -> None:
    linkage.to_deployment(name="linkage").apply()
    residents = _residents(len(AGENCY_TYPES))
    load_registry(registry, {"residents": residents})
    coordinator = coordinator_of(registry, "A")
    for agency_type, resident in zip(AGENCY_TYPES, residents, strict=True):
        launched = steering.launch(
            registry,
            intervention="linkage",
            complex_code="A",
            resident_ref=resident["ref"],
            agency_type=agency_type.code,
            service="service-linkage",
            by=coordinator,
        )
        run_once(launched.flow_run_id, linkage)
        steering.approve(registry, launched.case_ref, approved=True, by=coordinator)  # written consent
        state = run_once(launched.flow_run_id, linkage).state
        assert state is not None and state.state_details.pause_key == "answer-linkage-1", agency_type.code
        with registry.transaction() as session:
            referral = session.scalar(
                select(Referral).where(Referral.case_id == read_case(registry, launched.case_ref).id)
            )
            assert referral is not None and referral.agency.type_code == agency_type.code
            address = referral.agency.email
        sent = [m for m in read_captured(mail.mail_dir) if m.headers.get("X-Yeongye-Case") == launched.case_ref]
        # The consent request to the coordinator, then the referral to the agency.
        assert [m.to for m in sent] == [["coord-a@example.org"], [address]], agency_type.code


def test_a_linkage_from_the_command_line_to_closure(
    prefect_server: None, registry: Database, mail: MailCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Launched with its type and service, answered by the agency, closed by the supervisor; bad
    options name themselves and open nothing."""
    linkage.to_deployment(name="linkage").apply()
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-b"))
    listed = runner.invoke(app, ["agencies", "--type", "smoking-cessation", "--json"])
    assert listed.exit_code == 0, listed.output
    shown = json.loads(listed.output)
    assert shown and {a["type"] for a in shown} == {"smoking-cessation"} and shown[0]["type_ko"]
    services = {s["service"]: s["ko"] for s in json.loads(runner.invoke(app, ["services", "--json"]).output)}
    assert services["smoking-cessation"] == "금연 상담"
    for options, named in (
        (["--type", "no-such-type", "--service", "care"], "--type"),
        (["--type", "smoking-cessation", "--service", "no-such-service"], "--service"),
        (["--type", "smoking-cessation"], "--service"),
    ):
        refused = runner.invoke(app, ["launch", "linkage", "--complex", "B", "--resident", "R-B-003", *options])
        assert refused.exit_code == 2 and named in refused.output, refused.output
    hoarding_with_type = runner.invoke(
        app, ["launch", "hoarding", "--complex", "B", "--resident", "R-B-003", "--type", "police"]
    )
    assert hoarding_with_type.exit_code == 2 and "--type" in hoarding_with_type.output

    launched = runner.invoke(
        app,
        ["launch", "linkage", "--complex", "B", "--resident", "R-B-003"]
        + ["--type", "smoking-cessation", "--service", "smoking-cessation"],
    )
    assert launched.exit_code == 0, launched.output
    case = read_case(registry, "C-" + launched.output.split("C-", 1)[1].split()[0])
    assert case.flow_run_id is not None
    final = drive(Script(registry, case.ref), case.flow_run_id, flow=linkage, max_waits=10)
    assert final.state is not None and final.state.is_completed(), final.state
    closed = read_case(registry, case.ref)
    assert (closed.status, closed.outcome) == ("closed", "linked")
    with registry.transaction() as session:
        referral = session.scalar(select(Referral).where(Referral.case_id == case.id))
        assert referral is not None and (referral.agency.type_code, referral.status) == (
            "smoking-cessation",
            "completed",
        )
    # The resident's details reached the agency only because written consent covers its type.
    to_agency = [m for m in read_captured(mail.mail_dir) if m.headers.get("X-Yeongye-Case") == case.ref]
    assert any(referral.agency.email in m.to for m in to_agency)
