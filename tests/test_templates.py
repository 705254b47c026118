"""Emails exist in Korean and English, as subject, plain text and HTML, and escape what they quote."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from templates import render, weekday

REFERRAL = dict(
    case_ref="C-2026-0007",
    agency_name="가온구정신건강복지센터",
    complex_name="가온 영구임대 D단지",
    service="정신건강 상담",
    step="mental-health",
    due_date="2026-11-30",
    coordinator_name="담당자",
    coordinator_email="coord-d@example.org",
)


LINKS = {purpose: f"http://127.0.0.1:8030/answer/{purpose}-token" for purpose in ("accept", "decline", "done")}


@pytest.mark.parametrize(("language", "prefix", "day"), [("ko", "[연계 요청]", "월"), ("en", "[Referral]", "Mon")])
def test_referral_in_each_language(language: str, prefix: str, day: str) -> None:
    due = weekday(dt.date(2026, 11, 30), language)
    subject, text, html = render("referral", language, resident=None, due_weekday=due, links=LINKS, **REFERRAL)
    assert due == day
    assert subject.startswith(prefix) and "C-2026-0007" in subject
    assert "coord-d@example.org" in text and f"2026-11-30 ({day})" in text
    assert html.startswith("<!doctype html>")
    assert all(link in text and link in html for link in LINKS.values())


def test_consented_details_are_shown_and_html_escaped() -> None:
    resident = SimpleNamespace(name="홍<길>순", building="101동", unit="601호", phone="010-0000-0001")
    _subject, text, html = render("referral", "ko", resident=resident, due_weekday="월", links=LINKS, **REFERRAL)
    assert "홍<길>순" in text
    assert "홍&lt;길&gt;순" in html and "홍<길>순" not in html


DEADLINE = dict(
    legal_basis="",
    recipient_name="담당자",
    case_ref="C-2026-0007",
    complex_name="가온 영구임대 D단지",
    what="초기상담 공동 가정방문",
    waiting_on="가온1동 행정복지센터",
    due_date="2026-12-29",
    due_weekday="화",
    days_late=2,
    life_safety=False,
    coordinator_name="담당자",
    coordinator_email="coord-d@example.org",
)


@pytest.mark.parametrize("language", ["ko", "en"])
def test_a_life_safety_rung_says_it_counts_hours_every_day(language: str) -> None:
    """A no-contact check's notices give its due time and say the clock runs on nights and holidays;
    the supervisor hears before the time runs out, not days after."""
    hours = {**DEADLINE, "due_date": "2027-09-11 18:00", "life_safety": True}
    _subject, text, html = render("deadline", language, level="supervisor", links=None, next_rung=None, **hours)
    banner, soon = ("생명·안전 기한", "30분 뒤") if language == "ko" else ("Life-safety deadline", "in 30 minutes")
    assert banner in text and banner in html and soon in text and "2027-09-11 18:00" in text
    _subject, days_text, _html = render(
        "deadline", language, level="supervisor", links=None, next_rung=None, **DEADLINE
    )
    assert banner not in days_text and soon not in days_text


@pytest.mark.parametrize("language", ["ko", "en"])
@pytest.mark.parametrize("level", ["reminder", "coordinator", "supervisor", "timed-out"])
def test_each_rung_of_the_deadline_ladder_has_its_own_wording(language: str, level: str) -> None:
    links = LINKS if level == "reminder" else None
    next_rung = None if level == "timed-out" else {"label": "다음", "date": "2027-01-04"}
    subject, text, html = render("deadline", language, level=level, links=links, next_rung=next_rung, **DEADLINE)
    others = {"reminder", "coordinator", "supervisor", "timed-out"} - {level}
    wording = {render("deadline", language, level=other, links=None, next_rung=None, **DEADLINE)[1] for other in others}
    assert text not in wording and "C-2026-0007" in subject and "2026-12-29" in text
    assert all(link in text and link in html for link in LINKS.values()) == (level == "reminder")
    assert ("2027-01-04" in text) == (level != "timed-out")
