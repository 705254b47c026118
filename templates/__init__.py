"""Jinja2 email templates, Korean first (``ko/``) with English (``en/``), each as subject, text and HTML."""

from __future__ import annotations

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


def render(name: str, language: str, **context: Any) -> tuple[str, str, str]:
    """Render ``name`` in ``language``: returns (subject, plain text, HTML)."""
    subject = _ENV.get_template(f"{language}/{name}.subject.j2").render(**context).strip()
    text = _ENV.get_template(f"{language}/{name}.txt.j2").render(**context)
    html = _ENV.get_template(f"{language}/{name}.html.j2").render(**context)
    return subject, text, html
