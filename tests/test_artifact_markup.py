"""What Prefect's UI shows of a case renders as text: an id someone typed cannot load an image or link.

Artifacts carry codes, counts and ids only, but an agency id is typed into the registry by a person;
in staff browsers a markdown image in it would load from a remote host.
"""

from __future__ import annotations

from markdown_it import MarkdownIt

from tasks import case, programs

HOSTILE = "gaon-cc-1![x](http://evil.example/p.png)<img src=http://evil.example/q.png>[link](http://evil.example)"


def _rendered(markdown: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(markdown)


def test_the_programme_report_shows_a_hostile_agency_id_as_text() -> None:
    report = {
        "case": "C-2026-0001",
        "kind_title": "독거노인 공동 프로그램",
        "complex": "D",
        "partners": [HOSTILE],
        "invited": 12,
        "invited_alone": 8,
        "enrolled": 10,
        "enrolled_alone": 7,
        "sessions_held": 1,
        "sessions_planned": 3,
        "attendances": 9,
        "sessions": [{"number": 1, "planned_on": "2026-12-10", "status": "held|<b>x</b>", "attended": 9}],
    }
    html = _rendered(programs._markdown(report))
    assert "<img" not in html and "<a " not in html and "<b>" not in html
    assert "evil.example" in html  # shown, as text
    assert html.count("<tr>") == 2  # the status's "|" did not split the row


def test_the_case_timeline_escapes_the_same_way() -> None:
    html = _rendered(f"| {case.escaped(HOSTILE)} |\n|---|\n| x |")
    assert "<img" not in html and "<a " not in html and "evil.example" in html
