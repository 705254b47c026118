"""The one check every text input passes before it is used: no control characters, a bounded length.

People type into many doors: the Prefect UI forms, the answer page behind the email links, the
command line, a registry file. A NUL byte that PostgreSQL refuses, or a reason pasted ten
thousand characters long, must be turned away at the door with a message naming the field,
never fail a case later. ``clean_text`` is that check; ``checked`` puts it on a pydantic field,
and ``schema_rules`` writes the same rules into the field's JSON schema, so that Prefect's server
refuses a bad form before the flow ever sees it.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationInfo

from registry.cases import CaseError

# Lengths, in characters. Identifiers (agency, staff, case references) fit the registry's columns.
ID_MAX = 64
REASON_MAX = 2000
PLACE_MAX = 128
MINUTES_MAX = 20_000

# Unicode category Cc is U+0000–U+001F and U+007F–U+009F; a multi-line field keeps tab and newline.
_CONTROL = r"\x00-\x1f\x7f-\x9f"
_CONTROL_BUT_TAB_NEWLINE = r"\x00-\x08\x0b-\x1f\x7f-\x9f"


class TextError(CaseError):
    """A text input refused at the door; the message names the field and never repeats the value."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def clean_text(value: str, field: str, max_len: int, *, multiline: bool = False) -> str:
    """``value`` if it is fit to store, else ``TextError`` naming ``field``.

    A multi-line field (a reason, minutes) may hold tabs and newlines; browsers send a textarea's
    line breaks as CRLF, so those come back as plain newlines.
    """
    if multiline:
        value = value.replace("\r\n", "\n")
    allowed = "\t\n" if multiline else ""
    if any(unicodedata.category(char) == "Cc" and char not in allowed for char in value):
        raise TextError(field, "제어 문자는 쓸 수 없습니다 (control characters are not allowed)")
    if len(value) > max_len:
        raise TextError(field, f"{max_len}자 이내여야 합니다 (at most {max_len} characters)")
    return value


def checked(max_len: int, *, multiline: bool = False) -> AfterValidator:
    """``clean_text`` as a pydantic validator; the field's own name names it in the message."""

    def check(value: str, info: ValidationInfo) -> str:
        return clean_text(value, info.field_name or "value", max_len, multiline=multiline)

    return AfterValidator(check)


def schema_rules(max_len: int, *, multiline: bool = False) -> Any:
    """The same rules in a field's JSON schema: what Prefect's server checks a form against before it resumes a run."""
    control = _CONTROL_BUT_TAB_NEWLINE if multiline else _CONTROL
    return Field(json_schema_extra={"maxLength": max_len, "pattern": f"^[^{control}]*$"})


# Form fields: checked by the flow when it loads the form, and by Prefect's server when it is sent.
ShortText = Annotated[str, checked(ID_MAX), schema_rules(ID_MAX)]  # ids, codes, dates and times
Reason = Annotated[str, checked(REASON_MAX, multiline=True), schema_rules(REASON_MAX, multiline=True)]
Place = Annotated[str, checked(PLACE_MAX), schema_rules(PLACE_MAX)]
