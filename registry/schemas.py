"""The shape of a registry file, checked before anything touches the database.

These models check each item on its own (types, vocabulary, formats; text the way every input
is checked, ``registry.text``). Checks that need the whole
file or the database (unique ids, complexes referenced by staff and residents) live in
``registry.loader``, because they must still run when some items fail here, so that one load
reports every problem at once.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from registry.catalog import AGENCY_TYPE_CODES, SERVICES
from registry.text import checked

# Deliberately loose: it catches typos (missing "@", spaces, no domain dot) without pretending to
# implement RFC 5322; a wrong but well-formed address surfaces as a bounce, not here.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def _check_email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"not a valid email address: {value!r}")
    return value


# A complex code fits the registry's column; the loader looks up only codes that do.
COMPLEX_CODE_MAX = 8

Email = Annotated[str, checked(254), AfterValidator(_check_email)]


class _Item(BaseModel):
    # Unknown keys are usually misspelt known ones; ignoring them would silently drop data.
    model_config = ConfigDict(extra="forbid")


class AgencyIn(_Item):
    id: Annotated[str, checked(64)] = Field(min_length=1)
    name: Annotated[str, checked(128)] = Field(min_length=1)
    type: str
    district: Annotated[str, checked(64)] = Field(min_length=1)
    email: Email
    phone: Annotated[str, checked(32)] = Field(min_length=1)
    services: list[str] = Field(default_factory=list)
    rank: int = Field(default=1, ge=1)
    active: bool = True

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in AGENCY_TYPE_CODES:
            raise ValueError(f"unknown agency type {value!r}")
        return value

    @field_validator("services")
    @classmethod
    def _known_services(cls, value: list[str]) -> list[str]:
        unknown = [code for code in value if code not in SERVICES]
        if unknown:
            raise ValueError(f"unknown service(s) {', '.join(map(repr, unknown))}")
        return value


CENTRE_CODE_MAX = 16


class CentreIn(_Item):
    code: Annotated[str, checked(CENTRE_CODE_MAX)] = Field(min_length=1)
    name: Annotated[str, checked(128)] = Field(min_length=1)
    kind: Literal["central", "district"]


class ComplexIn(_Item):
    code: Annotated[str, checked(COMPLEX_CODE_MAX)] = Field(min_length=1)
    name: Annotated[str, checked(128)] = Field(min_length=1)
    district: Annotated[str, checked(64)] = Field(min_length=1)
    households: int = Field(gt=0)
    operator: Annotated[str, checked(64)] = Field(min_length=1)
    # The district centre whose staff work here (registry.access).
    centre_code: Annotated[str, checked(CENTRE_CODE_MAX)] = Field(min_length=1)


class StaffIn(_Item):
    id: Annotated[str, checked(64)] = Field(min_length=1)
    name: Annotated[str, checked(64)] = Field(min_length=1)
    role: Literal["coordinator", "supervisor", "centre-admin", "central"]
    email: Email
    centre_code: Annotated[str, checked(CENTRE_CODE_MAX)] = Field(min_length=1)
    complex_code: Annotated[str, checked(COMPLEX_CODE_MAX)] | None = None

    @model_validator(mode="after")
    def _coordinator_has_complex(self) -> StaffIn:
        # Cases are routed to the coordinator of the resident's complex, so one without a complex
        # would never receive anything.
        if self.role == "coordinator" and self.complex_code is None:
            raise ValueError("a coordinator needs a complex_code")
        return self


class ResidentIn(_Item):
    ref: Annotated[str, checked(32)] = Field(min_length=1)
    complex_code: Annotated[str, checked(COMPLEX_CODE_MAX)] = Field(min_length=1)
    name: Annotated[str, checked(64)] = Field(min_length=1)
    phone: Annotated[str, checked(32)] = Field(min_length=1)
    building: Annotated[str, checked(16)] = Field(min_length=1)
    unit: Annotated[str, checked(16)] = Field(min_length=1)
    birth_year: int = Field(ge=1900, le=2100)
    lives_alone: bool = False
    # Job-track facts (registry.jobs); left out when not yet verified.
    basic_pension: bool | None = None
    livelihood_benefit: bool | None = None
    employee_insured: bool | None = None
    ltc_grade: bool | None = None
    other_job_programme: bool | None = None


class RegistryFile(BaseModel):
    """A whole file; every section is optional so a file may add, say, residents only."""

    model_config = ConfigDict(extra="forbid")
    centres: list[CentreIn] = Field(default_factory=list)
    agencies: list[AgencyIn] = Field(default_factory=list)
    complexes: list[ComplexIn] = Field(default_factory=list)
    staff: list[StaffIn] = Field(default_factory=list)
    residents: list[ResidentIn] = Field(default_factory=list)
