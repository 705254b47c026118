"""One settings object for every part of yeongye.

Read from environment variables prefixed ``YEONGYE_`` so that the CLI, the local stack, the
Prefect worker and every flow-run process it spawns see the same configuration without
passing anything personal through Prefect. Defaults run locally with no setup.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import psutil
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from registry.catalog import AGENCY_TYPE_CODES
from registry.escalation import Ladder
from registry.jobs import parse_window


class RegistryUnavailable(RuntimeError):
    """The configured registry cannot be reached now; the message says why and what to do."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="YEONGYE_", extra="ignore")

    data_dir: Path = Field(
        default=Path.home() / ".yeongye",
        description="Where the embedded PostgreSQL, result storage and captured mail live.",
    )
    database_url: str | None = Field(
        default=None,
        description="Registry database. Unset: SQLite under data_dir (or the embedded PostgreSQL under `up`).",
    )
    prefect_database_url: str | None = Field(
        default=None,
        description="Database of the Prefect server started by `up`. Unset: the embedded PostgreSQL.",
    )
    embedded_postgres: bool = Field(
        default=True, description="`up` starts an embedded PostgreSQL when no database URLs are given."
    )
    prefect_port: int = 4200
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_capture: bool = Field(default=True, description="`up` runs a loopback SMTP server that keeps every message.")
    smtp_timeout: float = Field(
        default=10.0, description="Seconds one SMTP attempt may take; then it is retried later."
    )
    relay_interval: float = Field(default=1.0, description="Seconds between two looks of the outbox relay.")
    outbox_max_backoff: float = Field(
        default=300.0, description="Longest wait, in seconds, between two attempts at one message while SMTP is down."
    )
    recovery_interval: float = Field(
        default=60.0,
        description="Seconds between two looks for cases whose flow run crashed or is missing.",
    )
    mail_from: str = "yeongye@localhost"
    answer_port: int = Field(default=8030, description="Port of the page agencies answer on (signed links).")
    public_url: str | None = Field(
        default=None, description="Base address of that page in emails. Unset: http://127.0.0.1:<answer_port>."
    )
    link_valid_days: int = Field(default=14, description="Days an answer link stays good after the due date.")
    allow_http_public_url: bool = Field(
        default=False,
        description="Let the answer page start with a non-loopback http:// public_url (links sent unencrypted).",
    )
    link_old_keys_dir: Path | None = Field(
        default=None,
        description="Directory of retired link keys that still verify. Unset: <data_dir>/link-secret.old.",
    )
    answer_rate_window: float = Field(default=60.0, gt=0, description="Seconds of the answer page's rate windows.")
    answer_rate_per_address: int = Field(
        default=60, ge=1, description="Requests one client address may make to the answer page per window."
    )
    answer_rate_per_link: int = Field(default=10, ge=1, description="Requests one answer link may make per window.")
    session_hours: float = Field(
        default=8.0, gt=0, le=24, description="Hours a `yeongye login` lasts (a working day); `yeongye logout` ends it."
    )
    token: str | None = Field(
        default=None,
        description="A session token from `yeongye login` (YEONGYE_TOKEN), for scripts; else <data_dir>/session.",
    )
    language: Literal["ko", "en"] = "ko"
    work_pool: str = "yeongye"
    worker_limit: int = Field(default=8, description="Flow runs one worker executes at once.")
    worker_executor: Literal["fork", "process"] = Field(
        default="fork",
        description="fork: each execution forked from a warm process (yeongye.forkserver); process: Prefect's own.",
    )
    worker_query_seconds: float = Field(
        default=0.5, description="How often the worker asks Prefect for flow runs to execute (seconds)."
    )
    log_format: Literal["console", "json"] = "console"
    due_business_days: dict[str, int] = Field(
        default_factory=dict,
        description='Answer time per agency type, e.g. {"cleaning-coop": 7}; others keep the catalog default.',
    )
    reminder_days_before: int = Field(default=1, description="Remind the agency this many business days before due.")
    escalate_to_coordinator_after: int = Field(default=1, description="Business days after due: tell the coordinator.")
    escalate_to_supervisor_after: int = Field(default=3, description="Business days after due: tell the supervisor.")
    final_deadline_after: int = Field(
        default=5, description="Business days after due: the handoff times out and the flow moves on."
    )

    senior_jobs_recruitment: str = Field(
        default="11-28/12-26",
        description="The 시니어클럽's yearly recruitment window, MM-DD/MM-DD (2026 programme: 11-28 to 12-26).",
    )

    @field_validator("senior_jobs_recruitment")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_window(value)
        return value

    @field_validator("due_business_days")
    @classmethod
    def _known_agency_types(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - AGENCY_TYPE_CODES)
        if unknown:
            raise ValueError(f"unknown agency type(s): {', '.join(unknown)}")
        if any(days < 1 for days in value.values()):
            raise ValueError("answer times must be at least 1 business day")
        return value

    @property
    def ladder(self) -> Ladder:
        return Ladder(
            reminder_before=self.reminder_days_before,
            coordinator_after=self.escalate_to_coordinator_after,
            supervisor_after=self.escalate_to_supervisor_after,
            final_after=self.final_deadline_after,
        )

    @property
    def prefect_auth_file(self) -> Path:
        """The stack's Prefect API auth string (yeongye.prefect_api), mode 0600."""
        return self.data_dir / "prefect-auth"

    @property
    def stack_file(self) -> Path:
        """Written by `yeongye up` while it runs, so other commands find its databases."""
        return self.data_dir / "stack.json"

    def stack_info(self) -> dict[str, Any]:
        try:
            return json.loads(self.stack_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    @property
    def registry_url(self) -> str:
        """The one registry the configuration names; never a silent stand-in.

        A configured URL wins. Otherwise the registry is the one ``yeongye up`` runs: its embedded
        PostgreSQL while the stack is up, or the SQLite file when the stack is configured without
        PostgreSQL. With the embedded database and no stack running there is no registry to use,
        and a command that needs one must say so rather than open an empty file.
        """
        if self.database_url:
            return self.database_url
        info = self.stack_info()
        if info.get("database_url") and psutil.pid_exists(int(info.get("pid") or 0)):
            return str(info["database_url"])
        if self.embedded_postgres:
            raise RegistryUnavailable(
                f"등록부는 yeongye up 이 실행하는 내장 PostgreSQL 에 있는데, {self.data_dir} 에서 스택이 "
                "실행 중이 아닙니다. 먼저 yeongye up 을 실행하세요 (the registry lives in the embedded "
                "PostgreSQL of `yeongye up`, which is not running; start it, or set YEONGYE_DATABASE_URL)"
            )
        return f"sqlite:///{self.data_dir / 'yeongye.db'}"

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    @property
    def link_secret_file(self) -> Path:
        return self.data_dir / "link-secret"

    @property
    def link_old_keys(self) -> Path:
        """Retired link keys: each file in it still verifies the links it signed, until it is deleted."""
        return self.link_old_keys_dir or self.data_dir / "link-secret.old"

    @property
    def answer_base_url(self) -> str:
        return (self.public_url or f"http://127.0.0.1:{self.answer_port}").rstrip("/")

    @property
    def prefect_api_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"


def get_settings() -> Settings:
    """Read settings now; never cached, so tests and subprocesses see their own environment."""
    return Settings()
