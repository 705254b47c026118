"""Case conferences: ICS invitations a standard parser reads, replies by signed link, minutes kept
out of Prefect, the roles handed off next, and one mail thread per case and agency."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import re
import threading
import time
from collections import defaultdict
from email import policy
from email.parser import BytesParser
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from icalendar import Calendar
from sqlalchemy import func, select
from typer.testing import CliRunner

from registry import acts, cases, conferences, links, notes
from registry.calendar import SEOUL, BusinessCalendar
from registry.db import Database
from registry.models import Agency, AuditEntry, Conference, Referral, Resident
from templates import render
from tests.conftest import every_backend
from tests.driving import (
    CONFERENCE_PLACE,
    Script,
    assert_not_in_prefect,
    conference_slot,
    coordinator_of,
    deploy_hoarding,
    read_run,
    run_once,
    token_of,
)
from tests.test_answer_links import answer_server  # noqa: F401 - the answer page, as a fixture
from yeongye import steering
from yeongye.cli import app
from yeongye.mailcapture import CapturedMail, MailCapture, read_captured
from yeongye.settings import get_settings

INVITED = {
    "gaon-district-1": "district1@example.org",
    "gaon-cc-1": "cc1@example.org",
    "gaon-mgmt-1": "mgmt1@example.org",
    "gaon-mhwc-1": "mhwc1@example.org",
    "gaon-phc-1": "phc1@example.org",
    "gaon-wc-1": "wc1@example.org",
}
MINUTES = "회의록: 저장물 정리 뒤 정신건강 상담 연계가 필요함 (minutes marker 7f3a9c)"
runner = CliRunner()


# -- the registry's rules, without Prefect ---------------------------------------------------------

MONDAY = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SEOUL)


def _case(db: Database) -> str:
    with db.transaction() as session:
        return cases.open_case(
            session, intervention="hoarding", complex_code="D", resident_ref="R-D-003", opened_at=MONDAY, by="coord-d"
        ).ref


def _schedule(
    db: Database, ref: str, date: str, at: str, place: str = "가온구청 소회의실", minutes: int = 90
) -> tuple[Conference, bool]:
    with db.transaction() as session:
        case = cases.find_case(session, ref)
        return conferences.schedule(
            session,
            case,
            step="conference",
            starts_at=conferences.parse_start(date, at),
            duration_minutes=minutes,
            place=place,
            now=MONDAY,
            days=BusinessCalendar(),
            by=case.coordinator_id,
        )


@every_backend
def test_schedule_is_checked_and_moving_it_bumps_the_sequence(registry: Database) -> None:
    ref = _case(registry)
    refused = {
        ("2026-11-3", "14:00"): "date (--date)",
        ("2026-11-25", "2pm"): "time (--time)",
        ("2026-11-20", "14:00"): "date (--date)",  # in the past
        ("2026-11-28", "14:00"): "date (--date)",  # a Saturday
        ("2026-12-25", "14:00"): "date (--date)",  # Christmas, a public holiday
    }
    for (date, at), field in refused.items():
        with pytest.raises(cases.CaseError, match=re.escape(field)):
            _schedule(registry, ref, date, at)
    with pytest.raises(cases.CaseError, match=re.escape("place (--place)")):
        _schedule(registry, ref, "2026-11-25", "14:00", place="  ")
    with pytest.raises(cases.CaseError, match=re.escape("duration (--duration)")):
        _schedule(registry, ref, "2026-11-25", "14:00", minutes=5)

    conference, changed = _schedule(registry, ref, "2026-11-25", "14:00")
    assert changed and conference.sequence == 0
    assert not _schedule(registry, ref, "2026-11-25", "14:00")[1]  # the same again changes nothing
    with registry.transaction() as session:
        case = cases.find_case(session, ref)
        stored = conferences.get(session, case, "conference")
        assert conferences.starts_at(stored) == dt.datetime(2026, 11, 25, 14, 0, tzinfo=SEOUL)  # both backends
        invitation = conferences.invite(session, case, stored, session.get(Agency, "gaon-cc-1"))  # type: ignore[arg-type]
        cases.record_answer(
            session, case, invitation, status="accepted", reason="", actor=acts.link_actor(invitation.id), at=MONDAY
        )
        # Asking again for that type finds the agency already invited, not the next one.
        assert conferences.invitee(session, case, "conference", "community-center").id == "gaon-cc-1"  # type: ignore[union-attr]
    moved, changed = _schedule(registry, ref, "2026-11-26", "10:30")
    assert changed and moved.sequence == 1
    with registry.transaction() as session:
        invitation = conferences.invitations(session, cases.find_case(session, ref), "conference")[0]
        # An answer was for the old time: the agency is asked again, for the new day.
        assert (invitation.kind, invitation.status, invitation.due_date) == (
            "invitation",
            "requested",
            dt.date(2026, 11, 26),
        )


@every_backend
def test_outcome_checks_roles_and_closes_the_invitations(registry: Database) -> None:
    ref = _case(registry)
    _schedule(registry, ref, "2026-11-25", "14:00")
    with registry.transaction() as session:
        case = cases.find_case(session, ref)
        conference = conferences.get(session, case, "conference")
        for agency_id in ("gaon-cc-1", "gaon-wc-1"):
            conferences.invite(session, case, conference, session.get(Agency, agency_id))  # type: ignore[arg-type]
        declined = cases.find_referral(session, case, "conference", "gaon-wc-1")
        assert declined is not None
        cases.record_answer(
            session,
            case,
            declined,
            status="rejected",
            reason="일정 겹침",
            actor=acts.link_actor(declined.id),
            at=MONDAY,
        )

    def outcome(proceed: bool, roles: list[tuple[str, str]], reason: str = "") -> Conference:
        with registry.transaction() as session:
            case = cases.find_case(session, ref)
            return conferences.record_outcome(
                session, case, step="conference", proceed=proceed, roles=roles, reason=reason, by="coord-d", at=MONDAY
            )

    for roles in ([("nobody", "cleaning")], [("gaon-wc-1", "teleport")], [("gaon-wc-1", "cleaning")] * 2):
        with pytest.raises(cases.CaseError, match=re.escape("role (--role)")):
            outcome(True, roles)
    with pytest.raises(cases.CaseError, match=re.escape("reason (--reason)")):
        outcome(False, [])
    recorded = outcome(True, [("gaon-wc-1", "supplies-programs")])
    assert (recorded.held, recorded.roles) == (True, [{"agency_id": "gaon-wc-1", "service": "supplies-programs"}])
    assert outcome(False, [], "나중 기록").held is True  # recording again changes nothing
    with registry.transaction() as session:
        statuses = {r.agency_id: r.status for r in session.scalars(select(Referral))}
    assert statuses == {"gaon-cc-1": "completed", "gaon-wc-1": "rejected"}


def test_invitation_email_in_each_language() -> None:
    context = dict(
        case_ref="C-2026-0007",
        agency_name="가온종합사회복지관",
        complex_name="가온 영구임대 D단지",
        date="2026-11-25",
        weekday="수",
        start_time="14:00",
        end_time="15:30",
        place="가온구청 <소>회의실",
        links={"accept": "http://x/answer/a", "decline": "http://x/answer/d"},
        coordinator_name="담당자",
        coordinator_email="coord-d@example.org",
    )
    subject, text, html = render("conference", "ko", resident=None, sequence=0, **context)
    assert subject.startswith("[통합사례회의]") and "C-2026-0007" in subject and "2026-11-25 (수) 14:00" in subject
    assert "14:00–15:30" in text and "http://x/answer/a" in html and "http://x/answer/d" in text
    assert "완료" not in text and "가온구청 &lt;소&gt;회의실" in html
    resident = SimpleNamespace(name="홍길순", building="101동", unit="601호", phone="010-0000-0001")
    subject, text, _html = render("conference", "en", resident=resident, sequence=1, **context)
    assert subject.startswith("[Case conference updated]") and "홍길순" in text and "has moved" in text


# -- a hoarding case through its conference --------------------------------------------------------


def _drive_until(script: Script, flow_run_id: str, kind: str) -> steering.Wait:
    """Answer the case's waits the default way until it waits for ``kind``."""
    for _ in range(20):
        run_once(flow_run_id)
        wait = steering.current_wait(script.db, script.case_ref)
        if wait.kind == kind:
            return wait
        script.answer(wait)
    raise AssertionError(f"the case never waited for {kind}: {script.waits}")


def _calendar(message: CapturedMail) -> Calendar:
    with message.path.open("rb") as fh:
        email = BytesParser(policy=policy.default).parse(fh)
    parts = [part for part in email.walk() if part.get_content_type() == "text/calendar"]
    assert len(parts) == 1 and parts[0].get_param("method") == "REQUEST", message.subject
    return Calendar.from_ical(parts[0].get_content())


def _link(message: CapturedMail, label: str) -> str:
    found = re.search(rf"{re.escape(label)}: (http://\S+)", message.text)
    assert found, message.text
    return found.group(1)


def _invitations(mail: MailCapture, step: str = "conference") -> dict[str, CapturedMail]:
    """The captured invitations of one version, by agency (the step part of the outbox key)."""
    return {
        m.headers["X-Yeongye-Key"].split(":")[2]: m
        for m in read_captured(mail.mail_dir)
        if m.headers["X-Yeongye-Key"].split(":")[1] == step
    }


def _counts(db: Database) -> tuple[int, int, str | None]:
    with db.transaction() as session:
        return (
            session.scalar(select(func.count(Conference.id))) or 0,
            session.scalar(select(func.count(AuditEntry.id))) or 0,
            session.scalar(select(Conference.minutes)),
        )


def _assert_one_thread_per_agency(messages: list[CapturedMail]) -> None:
    """What a threading mail client needs to show one thread per (case, recipient)."""
    threads: dict[tuple[str, str], list[CapturedMail]] = defaultdict(list)
    for message in messages:  # captured in the order they were sent
        threads[(message.headers["X-Yeongye-Case"], message.to[0])].append(message)
    for first, *later in threads.values():
        assert "In-Reply-To" not in first.headers and "References" not in first.headers
        previous = first
        for message in later:
            assert message.headers["In-Reply-To"] == previous.message_id
            references = message.headers["References"].split()
            assert references[0] == first.message_id and references[-1] == previous.message_id
            previous = message
    assert len({m.message_id for m in messages}) == len(messages)


@every_backend
def test_conference_invites_records_replies_and_hands_off_the_roles(
    prefect_server: None,
    registry: Database,
    mail: MailCapture,
    answer_server: str,  # noqa: F811 - the imported fixture
    results_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deploy_hoarding()
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-d"))  # the CLI acts as complex D's coordinator
    launched = steering.launch(
        registry, intervention="hoarding", complex_code="D", resident_ref="R-D-002", by=coordinator_of(registry, "D")
    )
    ref = launched.case_ref
    script = Script(registry, ref)
    assert _drive_until(script, launched.flow_run_id, "schedule").key == "schedule-conference-1-1"

    # Bad options are refused by name, and nothing is written or resumed.
    date, at, place = conference_slot(registry)
    before = _counts(registry)
    saturday = dt.date.fromisoformat(date) + dt.timedelta(days=(5 - dt.date.fromisoformat(date).weekday()) % 7)
    for options, named in [
        (["--date", "2026-13-01", "--time", at, "--place", place], "--date"),
        (["--date", date, "--time", "25:00", "--place", place], "--time"),
        (["--date", "2020-01-06", "--time", at, "--place", place], "--date"),
        (["--date", saturday.isoformat(), "--time", at, "--place", place], "--date"),
        (["--date", date, "--time", at, "--place", " "], "--place"),
        (["--date", date, "--time", at, "--place", place, "--duration", "5"], "--duration"),
    ]:
        result = runner.invoke(app, ["conference", "schedule", ref, *options])
        assert result.exit_code == 2 and named in result.output, result.output
    assert _counts(registry) == before
    wait = steering.current_wait(registry, ref)
    assert wait.key == "schedule-conference-1-1"

    # The same form, signed by the coordinator but with a past date that skipped the command's checks:
    # the flow checks it again, audits it in the signer's name, and asks again.
    with registry.transaction() as session:
        case = cases.find_case(session, ref)
        place_note = notes.write(session, case, kind=notes.PLACE, text=place, by="coord-d")
        act = acts.sign(session, case, wait.key, "coord-d")
    steering._resume(
        wait, {"date": "2020-01-06", "time": at, "place_note": place_note, "duration_minutes": 90, "act": act}
    )
    assert run_once(launched.flow_run_id).state.state_details.pause_key == "schedule-conference-1-2"  # type: ignore[union-attr]
    with registry.transaction() as session:
        invalid = session.scalars(select(AuditEntry).where(AuditEntry.action == "invalid-input")).all()
        assert [(a.actor, a.detail["wait"], "date (--date)" in a.detail["error"]) for a in invalid] == [
            ("coord-d", "schedule-conference-1-1", True)
        ]

    result = runner.invoke(app, ["conference", "schedule", ref, "--date", date, "--time", at, "--place", place])
    assert result.exit_code == 0, result.output
    assert run_once(launched.flow_run_id).state.state_details.pause_key == "minutes-conference-1-1"  # type: ignore[union-attr]

    # One invitation per agency, each carrying a calendar request a standard parser reads.
    invitations = _invitations(mail)
    assert {agency: m.to for agency, m in invitations.items()} == {a: [to] for a, to in INVITED.items()}
    with registry.transaction() as session:
        resident = session.get(Resident, "R-D-002")
        assert resident is not None
    starts = dt.datetime.combine(dt.date.fromisoformat(date), dt.time(14, 0), SEOUL)
    for message in invitations.values():
        calendar = _calendar(message)
        assert str(calendar["METHOD"]) == "REQUEST" and calendar.walk("VTIMEZONE")
        event = calendar.events[0]
        assert str(event["UID"]) == f"{ref}-conference@localhost" and event["SEQUENCE"] == 0
        assert event.start == starts and event["DTSTART"].params["TZID"] == "Asia/Seoul"
        assert event.end - event.start == dt.timedelta(minutes=90)
        assert str(event["SUMMARY"]) == f"통합사례회의 {ref}" and str(event["LOCATION"]) == place
        assert str(event["ORGANIZER"]) == "mailto:coord-d@example.org"
        attendees = {str(a).removeprefix("mailto:"): a.params for a in event["ATTENDEE"]}
        assert set(attendees) == set(INVITED.values())
        assert all(p["PARTSTAT"] == "NEEDS-ACTION" and p["RSVP"] == "TRUE" for p in attendees.values())
        ics = calendar.to_ical().decode()
        for personal in (resident.name, resident.phone, resident.unit, resident.building):
            assert personal not in ics
        assert message.headers["Reply-To"] == "coord-d@example.org"

    # Agencies answer from the email: one attends, one cannot. The flow is not resumed by them.
    accept = _link(invitations["gaon-cc-1"], "참석")
    decline = _link(invitations["gaon-wc-1"], "불참(사유 입력)")
    page = httpx.get(accept)
    assert page.status_code == 200 and "일시 (when)" in page.text and place in page.text
    assert resident.name not in page.text
    assert httpx.post(accept, timeout=30).status_code == 200
    assert httpx.post(decline, data={"reason": "같은 시간 다른 회의 (another meeting)"}, timeout=30).status_code == 200
    assert "이미 처리되었습니다" in httpx.post(accept, timeout=30).text  # answering twice changes nothing
    secret = links.load_secret(get_settings().link_secret_file)
    invitation_id = links.verify(accept.rsplit("/", 1)[1], secret, dt.datetime.now(dt.UTC)).referral_id
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    done = f"{answer_server}/answer/{links.sign(links.Claim(ref, invitation_id, 'done', expires), secret)}"
    assert httpx.post(done, timeout=30).status_code == 403  # an invitation has nothing to report done
    state = read_run(launched.flow_run_id).state
    assert state is not None and state.is_paused() and state.state_details.pause_key == "minutes-conference-1-1"

    timeline = json.loads(runner.invoke(app, ["case", ref, "--json"]).output)
    answers = {i["agency"]: i["status"] for i in timeline["conferences"][0]["invitations"]}
    assert answers["gaon-cc-1"] == "accepted" and answers["gaon-wc-1"] == "rejected"
    assert set(answers.values()) == {"accepted", "rejected", "requested"}
    assert not any(w.get("step") == "conference" for w in timeline["waiting_for"])  # nobody waits on RSVPs
    printed = runner.invoke(app, ["case", ref]).output
    assert "통합사례회의 conference" in printed and "참석 (attends)" in printed and "불참 (declined)" in printed

    # The outcome: bad options refused by name; then the minutes go to the registry, roles to the flow.
    minutes_file = tmp_path / "minutes.txt"
    minutes_file.write_text(MINUTES, encoding="utf-8")
    before = _counts(registry)
    for options, named in [
        (["--role", "gaon-wc-1"], "--role"),
        (["--role", "nobody=supplies-programs"], "--role"),
        (["--role", "gaon-wc-1=teleport"], "--role"),
        (["--not-proceeding"], "--reason"),
        (["--file", str(tmp_path / "missing.txt")], "--file"),
    ]:
        result = runner.invoke(app, ["conference", "minutes", ref, *options])
        assert result.exit_code == 2 and named in result.output, result.output
    assert _counts(registry) == before
    roles = ["--role", "gaon-wc-1=supplies-programs", "--role", "gaon-mhwc-1=mental-health"]
    result = runner.invoke(app, ["conference", "minutes", ref, "--file", str(minutes_file), *roles])
    assert result.exit_code == 0, result.output
    flow_run = run_once(launched.flow_run_id)
    assert flow_run.state.state_details.pause_key == "answer-conference-roles-1"  # type: ignore[union-attr]

    with registry.transaction() as session:
        conference = session.scalar(select(Conference))
        assert conference is not None
        assert (conference.held, conference.minutes) == (True, MINUTES)
        statuses = {
            (r.step, r.agency_id): (r.kind, r.service, r.status)
            for r in session.scalars(select(Referral).where(Referral.step.like("conference%")))
        }
    assert statuses[("conference", "gaon-cc-1")] == ("invitation", "case-conference", "completed")
    assert statuses[("conference", "gaon-wc-1")] == ("invitation", "case-conference", "rejected")
    assert {k: v for k, v in statuses.items() if k[0] == "conference-roles"} == {
        ("conference-roles", "gaon-wc-1"): ("handoff", "supplies-programs", "requested"),
        ("conference-roles", "gaon-mhwc-1"): ("handoff", "mental-health", "requested"),
    }
    assert sorted(m.to[0] for m in _invitations(mail, "conference-roles").values()) == [
        "mhwc1@example.org",
        "wc1@example.org",
    ]
    assert_not_in_prefect([MINUTES, "7f3a9c"], results_dir)
    _assert_one_thread_per_agency(read_captured(mail.mail_dir))


def _state_name(flow_run_id: str, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (state := read_run(flow_run_id).state) is None or state.name != name:
        assert time.monotonic() < deadline, f"flow run never reached {name}"
        time.sleep(0.2)


def test_moving_the_conference_updates_the_invitation_and_not_proceeding_closes_the_case(
    prefect_server: None, registry: Database, mail: MailCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy_hoarding()
    monkeypatch.setenv("YEONGYE_TOKEN", token_of(registry, "coord-e"))  # the CLI acts as complex E's coordinator
    launched = steering.launch(
        registry, intervention="hoarding", complex_code="E", resident_ref="R-E-002", by=coordinator_of(registry, "E")
    )
    ref = launched.case_ref
    script = Script(registry, ref)
    _drive_until(script, launched.flow_run_id, "minutes")
    first = _invitations(mail)

    # `conference schedule` while the case waits for the outcome: it asks to reschedule, then
    # fills in the schedule form the case comes back to. The flow runs here in between.
    date, _at, _place = conference_slot(registry, business_days=3)
    errors: list[BaseException] = []

    def move() -> None:
        try:
            steering.schedule_conference(
                registry,
                ref,
                date=date,
                time_of_day="10:30",
                place=CONFERENCE_PLACE,
                duration_minutes=60,
                by=script.coordinator,
            )
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            errors.append(error)

    mover = threading.Thread(target=contextvars.copy_context().run, args=(move,))
    mover.start()
    _state_name(launched.flow_run_id, "Resuming")
    run_once(launched.flow_run_id)  # back to the schedule form
    mover.join(timeout=60)
    assert not mover.is_alive() and not errors, errors
    assert run_once(launched.flow_run_id).state.state_details.pause_key == "minutes-conference-2-1"  # type: ignore[union-attr]

    updates = _invitations(mail, "conference-update-1")
    assert set(updates) == set(first) and len(updates) == 6
    for agency, message in updates.items():
        before, after = _calendar(first[agency]).events[0], _calendar(message).events[0]
        assert str(after["UID"]) == str(before["UID"]) and (before["SEQUENCE"], after["SEQUENCE"]) == (0, 1)
        assert after.start == dt.datetime.combine(dt.date.fromisoformat(date), dt.time(10, 30), SEOUL)
        assert after.end - after.start == dt.timedelta(minutes=60)
        assert message.headers["In-Reply-To"] == first[agency].message_id  # the same thread
        assert "[통합사례회의 일정 변경]" in message.subject

    result = runner.invoke(app, ["conference", "minutes", ref, "--not-proceeding", "--reason", "입주민 이사 예정"])
    assert result.exit_code == 0, result.output
    run_once(launched.flow_run_id)
    assert steering.current_wait(registry, ref).key.startswith("decision-closure")
    steering.approve(registry, ref, approved=True, by=script.supervisor)  # supervisor-1, of complex E's centre
    assert run_once(launched.flow_run_id).state.is_completed()  # type: ignore[union-attr]
    with registry.transaction() as session:
        case = cases.find_case(session, ref)
        invitations = conferences.invitations(session, case, "conference")
        assert (case.outcome, {r.status for r in invitations}) == ("not-proceeding-after-conference", {"cancelled"})
        assert {r.reason for r in invitations} == {"입주민 이사 예정"}
        assert conferences.get(session, case, "conference").held is False
