"""Jinja2 email templates, Korean first (``ko/``) with English (``en/``), each as subject, text and HTML."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

_ROOT = Path(__file__).parent
_ENV = Environment(
    loader=FileSystemLoader(str(_ROOT)),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


_WEEKDAYS = {"ko": "월화수목금토일", "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")}


def weekday(day: date, language: str) -> str:
    """The day of the week as the email's reader writes it (a due date is read with its weekday)."""
    return _WEEKDAYS[language][day.weekday()]


def render(name: str, language: str, **context: Any) -> tuple[str, str, str]:
    """Render ``name`` in ``language``: returns (subject, plain text, HTML)."""
    subject = _ENV.get_template(f"{language}/{name}.subject.j2").render(**context).strip()
    text = _ENV.get_template(f"{language}/{name}.txt.j2").render(**context)
    html = _ENV.get_template(f"{language}/{name}.html.j2").render(**context)
    return subject, text, html
