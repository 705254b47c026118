"""Reaching the stack's Prefect server: its address and its password.

Prefect's API answers anyone who can reach its port, and it holds every case's flow runs and
the answers people gave. So the stack starts its server with an auth string
(``PREFECT_SERVER_API_AUTH_STRING``) made on first start and kept in the data directory, readable
by its owner only; every process of ours that talks to the server (CLI, worker, flow runs,
answer page, background loops) presents it. The Prefect UI asks for it once per browser: it is
the content of ``<data dir>/prefect-auth``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

from yeongye.settings import Settings

USER = "yeongye"


def auth_string(settings: Settings) -> str | None:
    """The stack's auth string (``user:password``), or None before a stack first started here."""
    try:
        return settings.prefect_auth_file.read_text().strip() or None
    except FileNotFoundError:
        return None


def ensure_auth_string(settings: Settings) -> str:
    """The auth string, created on first use with mode 0600 from the start (never widened then narrowed)."""
    existing = auth_string(settings)
    if existing:
        return existing
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    value = f"{USER}:{secrets.token_urlsafe(32)}"
    try:
        fd = os.open(settings.prefect_auth_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it a moment ago: use theirs
        return auth_string(settings) or ensure_auth_string(settings)
    with os.fdopen(fd, "w") as file:
        file.write(value)
    return value


def client_env(settings: Settings) -> dict[str, str]:
    """Environment entries that let a Prefect client process (worker, flow runs, `prefect deploy`) in."""
    value = auth_string(settings)
    return {"PREFECT_API_AUTH_STRING": value} if value else {}


@contextmanager
def connected(settings: Settings, api_url: str) -> Iterator[None]:
    """Prefect clients made inside this block reach ``api_url`` with the stack's auth string."""
    updates: dict[object, object] = {PREFECT_API_URL: api_url}
    value = auth_string(settings)
    if value:
        updates[PREFECT_API_AUTH_STRING] = value
    with temporary_settings(updates):  # type: ignore[arg-type]
        yield
