"""Who may do what, on which centre's cases: the rules, with no database or login in them.

A centre (the central centre, or one of the district centres) owns complexes and employs staff.
Staff act on the cases of their own centre's complexes only; the central centre's staff read every
centre's cases (the shared case histories of seed 000) and change none. Decisions that commit
money or close a case are the supervisor's (the approval ladder of design.md).

Entry points (the CLI, the pages) authenticate a person and hand a ``Principal`` to the service
layer, which asks ``require`` before it reads or changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["coordinator", "supervisor", "centre-admin", "central"]
ROLES: tuple[Role, ...] = ("coordinator", "supervisor", "centre-admin", "central")
ROLE_LABELS: dict[str, str] = {
    "coordinator": "주거복지사 (coordinator)",
    "supervisor": "팀장·수퍼바이저 (supervisor)",
    "centre-admin": "센터 관리자 (centre admin)",
    "central": "중앙센터 (central, read-only)",
}

Action = Literal["read", "launch", "answer", "decide", "decide-as-supervisor", "administer"]
ACTION_LABELS: dict[str, str] = {
    "read": "사례·입주민 조회 (read)",
    "launch": "사례 시작 (launch)",
    "answer": "기관 답변·동의·회의 기록 (record answers)",
    "decide": "결정 (decide)",
    "decide-as-supervisor": "수퍼바이저 결정: 종결·예산·예외 (supervisor decision)",
    "administer": "직원·등록부 관리 (administer)",
}

# What each role may do within its scope (its own centre; every centre for reading by central).
ALLOWED: dict[str, frozenset[str]] = {
    "coordinator": frozenset({"read", "launch", "answer", "decide"}),
    "supervisor": frozenset({"read", "launch", "answer", "decide", "decide-as-supervisor"}),
    "centre-admin": frozenset({"read", "administer"}),
    "central": frozenset({"read"}),
}

# Decisions only a supervisor takes: closing a case, committing a budget, the §52② exception.
SUPERVISOR_DECISIONS = frozenset({"closure", "budget", "emergency-exception"})


@dataclass(frozen=True)
class Principal:
    """An authenticated staff member: the name every act and read is recorded under."""

    staff_id: str
    role: str
    centre_code: str


class AccessDenied(PermissionError):
    """Refused; the message names the person, the act and the reason, and is safe to show them."""


def decision_action(kind: str) -> Action:
    """The action a decision of ``kind`` (e.g. ``closure``, ``budget``) needs."""
    return "decide-as-supervisor" if kind in SUPERVISOR_DECISIONS else "decide"


def allows(principal: Principal, action: str, centre_code: str | None) -> bool:
    """True if the principal may take ``action`` on something of ``centre_code`` (None: no centre)."""
    if action not in ALLOWED.get(principal.role, frozenset()):
        return False
    if principal.role == "central":
        return True
    return centre_code is None or centre_code == principal.centre_code


def require(principal: Principal, action: str, centre_code: str | None, what: str = "") -> None:
    """Raise ``AccessDenied`` unless ``allows``; ``what`` (a case reference) goes into the message."""
    if allows(principal, action, centre_code):
        return
    label = ACTION_LABELS.get(action, action)
    role = ROLE_LABELS.get(principal.role, principal.role)
    if action not in ALLOWED.get(principal.role, frozenset()):
        reason = f"{role} 역할로는 할 수 없습니다 (not allowed for this role)"
    else:
        reason = f"다른 센터의 사례입니다 (belongs to another centre: {centre_code})"
    target = f" {what}" if what else ""
    raise AccessDenied(f"권한 없음 (access denied): {principal.staff_id} · {label}{target}: {reason}")
