"""Who may do what: roles, centres, and the scope rules every entry point applies before it acts.

A district centre owns complexes and staff; its coordinators, supervisors and centre admin work on
its cases only. The central centre oversees every district: its staff read every centre's cases
(shared case histories, seed 000) and change none. A refusal is an ``AccessDenied`` whose message
says, Korean first, what the person may not do; it never names what they could not see.

Pure rules over registry rows, so the CLI, the answer page and a later staff page all ask the same
questions here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.cases import CaseError
from registry.models import Case, Centre, Complex, Resident

COORDINATOR, SUPERVISOR, CENTRE_ADMIN, CENTRAL = "coordinator", "supervisor", "centre-admin", "central"
ROLES: dict[str, str] = {
    COORDINATOR: "주거복지사 (coordinator)",
    SUPERVISOR: "수퍼바이저 (supervisor)",
    CENTRE_ADMIN: "센터 관리자 (centre admin)",
    CENTRAL: "중앙센터 열람 (central, read-only)",
}
# The roles that work on cases: launch them, answer for them, decide in them.
CASE_WORKERS = (COORDINATOR, SUPERVISOR, CENTRE_ADMIN)

CENTRAL_KIND, DISTRICT_KIND = "central", "district"
CENTRE_KINDS: dict[str, str] = {
    CENTRAL_KIND: "중앙 주거복지센터 (central)",
    DISTRICT_KIND: "구 주거복지센터 (district)",
}


class AccessDenied(CaseError):
    """The authenticated person may not do this; nothing was read or written."""


@dataclass(frozen=True)
class Principal:
    """A logged-in member of staff, as ``registry.accounts.authenticate`` found them."""

    staff_id: str
    role: str
    centre_code: str | None
    centre_kind: str | None

    @property
    def oversees_all(self) -> bool:
        """The central centre's staff read every district's cases."""
        return self.centre_kind == CENTRAL_KIND or self.role == CENTRAL


def _centre_of_complex(session: Session, complex_code: str) -> str | None:
    return session.scalar(select(Complex.centre_code).where(Complex.code == complex_code))


def readable_complexes(session: Session, who: Principal) -> set[str] | None:
    """The complexes whose cases and residents ``who`` may read; None means every complex."""
    if who.oversees_all:
        return None
    return set(session.scalars(select(Complex.code).where(Complex.centre_code == who.centre_code)))


def readable_cases(session: Session, who: Principal) -> set[str] | None:
    """The case references ``who`` may read; None means every case."""
    complexes = readable_complexes(session, who)
    if complexes is None:
        return None
    return set(session.scalars(select(Case.ref).where(Case.complex_code.in_(complexes))))


def check_read_complex(session: Session, who: Principal, complex_code: str) -> None:
    if who.oversees_all:
        return
    if who.centre_code is None or _centre_of_complex(session, complex_code) != who.centre_code:
        raise AccessDenied(f"단지 '{complex_code}'는 {who.staff_id}의 센터 소관이 아닙니다 (not your centre's complex)")


def check_read_case(session: Session, who: Principal, case: Case) -> None:
    if not who.oversees_all and (
        who.centre_code is None or _centre_of_complex(session, case.complex_code) != who.centre_code
    ):
        raise AccessDenied(f"사례 {case.ref}는 {who.staff_id}의 센터 소관이 아닙니다 (not your centre's case)")


def check_read_resident(session: Session, who: Principal, resident_ref: str) -> None:
    resident = session.get(Resident, resident_ref)
    if resident is None:
        raise CaseError(f"--resident: 입주민 '{resident_ref}'가 등록되어 있지 않습니다 (unknown resident)")
    if not who.oversees_all:
        try:
            check_read_complex(session, who, resident.complex_code)
        except AccessDenied:
            raise AccessDenied(
                f"입주민 {resident_ref}는 {who.staff_id}의 센터 소관이 아닙니다 (not your centre's resident)"
            ) from None


def check_case_worker(who: Principal, what: str) -> None:
    """``who`` works on cases: a coordinator, supervisor or centre admin of a district centre."""
    if who.role not in CASE_WORKERS or who.centre_kind != DISTRICT_KIND:
        raise AccessDenied(
            f"{what}: {ROLES.get(who.role, who.role)}는 사례를 바꿀 수 없습니다; 중앙센터는 열람만 합니다 "
            "(this role changes no case; the central centre reads only)"
        )


def check_work_on(session: Session, who: Principal, complex_code: str, what: str) -> None:
    """``who`` may change cases of ``complex_code``: a case worker of the district centre that owns it."""
    check_case_worker(who, what)
    if session.get(Complex, complex_code) is None:
        raise CaseError(f"--complex: 단지 '{complex_code}'가 등록되어 있지 않습니다 (unknown complex)")
    if _centre_of_complex(session, complex_code) != who.centre_code:
        raise AccessDenied(f"{what}: 단지 '{complex_code}'는 {who.staff_id}의 센터 소관이 아닙니다 (not your centre's)")


def check_work_on_case(session: Session, who: Principal, case: Case, what: str) -> None:
    try:
        check_work_on(session, who, case.complex_code, what)
    except AccessDenied as refused:
        if who.role in CASE_WORKERS and who.centre_kind == DISTRICT_KIND:
            raise AccessDenied(
                f"{what}: 사례 {case.ref}는 {who.staff_id}의 센터 소관이 아닙니다 (not your centre's case)"
            ) from None
        raise refused from None


def check_admin(who: Principal, what: str, *, central_only: bool = False) -> None:
    """A centre administrator's act (accounts, the registry); ``central_only``: the central centre's admin."""
    if who.role != CENTRE_ADMIN or (central_only and who.centre_kind != CENTRAL_KIND):
        place = "중앙센터 " if central_only else ""
        raise AccessDenied(
            f"{what}: {place}센터 관리자만 할 수 있습니다 (only a {'central ' if central_only else ''}centre admin)"
        )


def check_admin_of(session: Session, who: Principal, centre_codes: set[str], what: str) -> None:
    """A centre admin may change their own centre's rows; the central centre's admin, any centre's."""
    check_admin(who, what)
    if who.centre_kind == CENTRAL_KIND:
        return
    foreign = sorted(code for code in centre_codes if code != who.centre_code)
    if foreign:
        raise AccessDenied(f"{what}: 센터 {', '.join(foreign)}는 {who.staff_id}의 센터가 아닙니다 (not your centre)")


def centre_kind(session: Session, centre_code: str | None) -> str | None:
    return session.scalar(select(Centre.kind).where(Centre.code == centre_code)) if centre_code else None
