"""Staff log-in: argon2 password hashes and short-lived session tokens.

A token is shown once, at log-in, and kept here only as its SHA-256, so a copy of the database
opens no session. It lasts a working day (``Settings.session_hours``); logging out ends it at
once. Every log-in, failed or not, and every password change is in the audit trail.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from registry import audit as trail
from registry.access import AccessDenied, Principal, centre_kind
from registry.models import Staff, StaffSession

_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the id is unknown, so a wrong id takes as long as a wrong password: the
# hash of a random password nobody kept, written here rather than made at import (~0.1 s that every
# command would pay). Its parameters must be the hasher's (tests/test_centres_and_roles.py).
DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$Pddg26tv+D/sxniF2JjSgQ$74cZSbq2o2StTajkvYFTH4GRsK6uWJLL9hqS9/6zIng"

TOKEN_PREFIX = "yg1_"
PASSWORD_MIN = 10
_WRONG = "아이디 또는 비밀번호가 맞지 않습니다 (wrong id or password)"
_EXPIRED = (
    "로그인이 없거나 만료되었습니다: yeongye login 으로 다시 로그인하십시오 (not logged in, or the session expired)"
)


# What the sample registry's staff log in with (README walk-through); given by load-sample only.
DEMO_PASSWORD = "demo"


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


@functools.cache
def _demo_hash() -> str:
    """One hash of the demo password per process: a test suite loads the sample hundreds of times."""
    return hash_password(DEMO_PASSWORD)


def give_demo_password(session: Session, staff_ids: list[str], *, by: str) -> int:
    """Let the sample's staff log in with ``DEMO_PASSWORD``; an account with its own password keeps it."""
    given = 0
    for staff in session.scalars(select(Staff).where(Staff.id.in_(staff_ids), Staff.password_hash.is_(None))):
        staff.password_hash = _demo_hash()
        given += 1
    if given:
        trail.record(session, actor=by, action="password-set", demo=True, accounts=given)
    return given


def set_password(session: Session, staff_id: str, password: str, *, by: str) -> None:
    """Set a member of staff's password, ending their open sessions; ``by`` is who set it."""
    if len(password) < PASSWORD_MIN:
        raise AccessDenied(f"password: {PASSWORD_MIN}자 이상이어야 합니다 (at least {PASSWORD_MIN} characters)")
    staff = session.get(Staff, staff_id)
    if staff is None:
        raise AccessDenied(f"--user: 직원 '{staff_id}'가 등록부에 없습니다 (unknown staff id)")
    staff.password_hash = hash_password(password)
    session.execute(
        update(StaffSession)
        .where(StaffSession.staff_id == staff_id, StaffSession.ended_at.is_(None))
        .values(ended_at=dt.datetime.now(dt.UTC))
    )
    trail.record(session, actor=by, action="password-set", staff=staff_id)


def log_in(session: Session, staff_id: str, password: str, *, now: dt.datetime, hours: float) -> str | None:
    """A new session token for ``staff_id``; None when refused (the attempt is recorded and must be
    committed, so the caller raises ``refused()`` after the transaction)."""
    staff = session.get(Staff, staff_id)
    if not check_password(staff, password) or staff is None:
        # Who tried is what was typed, not a person: recorded as the attempt, never as an actor.
        trail.record(session, actor="unauthenticated", action="login-failed", user=staff_id[:64])
        return None
    if _HASHER.check_needs_rehash(staff.password_hash or ""):
        staff.password_hash = hash_password(password)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    issued = now.astimezone(dt.UTC)  # stored in UTC: SQLite drops the zone, and ``_utc`` reads it back
    session.add(
        StaffSession(
            token_hash=_digest(token),
            staff_id=staff.id,
            issued_at=issued,
            expires_at=issued + dt.timedelta(hours=hours),
        )
    )
    trail.record(session, actor=staff.id, action="login")
    return token


def check_password(staff: Staff | None, password: str) -> bool:
    """Whether ``password`` is ``staff``'s; as slow for an unknown id as for a wrong password."""
    stored = staff.password_hash if staff is not None else None
    try:
        _HASHER.verify(stored or DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None


def refused() -> AccessDenied:
    """The one message for a refused log-in: it does not say whether the id exists."""
    return AccessDenied(_WRONG)


def authenticate(session: Session, token: str, *, now: dt.datetime) -> Principal:
    """Who holds ``token``, while their session lasts; ``AccessDenied`` otherwise."""
    row = session.scalar(select(StaffSession).where(StaffSession.token_hash == _digest(token.strip())))
    if row is None or row.ended_at is not None or _utc(row.expires_at) <= now.astimezone(dt.UTC):
        raise AccessDenied(_EXPIRED)
    staff = session.get(Staff, row.staff_id)
    if staff is None or staff.password_hash is None:
        raise AccessDenied(_EXPIRED)
    return Principal(staff.id, staff.role, staff.centre_code, centre_kind(session, staff.centre_code))


def log_out(session: Session, token: str, *, now: dt.datetime) -> str | None:
    """End the session of ``token``; returns whose it was (None: no such open session)."""
    row = session.scalar(select(StaffSession).where(StaffSession.token_hash == _digest(token.strip())))
    if row is None or row.ended_at is not None:
        return None
    row.ended_at = now.astimezone(dt.UTC)
    trail.record(session, actor=row.staff_id, action="logout")
    return row.staff_id


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _utc(value: dt.datetime) -> dt.datetime:
    """SQLite gives back a naive time (these columns are written in UTC); PostgreSQL an aware one."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
