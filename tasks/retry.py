"""Which failures a handoff retries: only the transient ones (SMTP down, database busy).

Bad input (a ``CaseError``, a template error) fails at once; retrying it would only repeat it.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import aiosmtplib
from prefect import Task
from prefect.cache_policies import RUN_ID, CachePolicy, Inputs
from prefect.context import TaskRunContext
from prefect.tasks import exponential_backoff
from sqlalchemy.exc import DBAPIError, OperationalError

from tasks.failpoints import crash_after_planned_task

TRANSIENT: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    OSError,
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPTimeoutError,
    smtplib.SMTPServerDisconnected,
    OperationalError,
)


def is_transient(error: BaseException) -> bool:
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return 400 <= error.code < 500  # 4xx: try again later; 5xx: permanent
    if isinstance(error, DBAPIError) and not isinstance(error, OperationalError):
        return bool(error.connection_invalidated)
    return isinstance(error, TRANSIENT)


def _retry_only_transient(_task: Task[Any, Any], _task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except Exception as error:  # noqa: BLE001 - the state's exception is what we classify
        return is_transient(error)
    return False


@dataclass
class TaskName(CachePolicy):
    """The task's name: two different tasks called with equal inputs in one run must not share a result."""

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        return task_ctx.task.name if task_ctx else None


P = ParamSpec("P")
R = TypeVar("R")


def handoff_task(
    *, name: str, task_run_name: str | Callable[[], str], added_inputs: tuple[str, ...] = ()
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A task whose result is persisted and replayed on resume.

    The cache key is the task's name, its inputs and the flow run id, without the task's source,
    so a case suspended for months still replays its finished steps after the code is redeployed.
    The flip side: two calls of one task with equal inputs in one run share a result, so a task
    called repeatedly takes an argument (a turn, a wait key) that tells the calls apart.
    ``added_inputs`` are parameters added after cases were suspended, left out of the key so that
    those cases still find the results of their calls; another input must tell calls apart.
    """

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        return Task(
            fn=fn,
            name=name,
            task_run_name=task_run_name,
            persist_result=True,
            cache_policy=TaskName() + Inputs(exclude=list(added_inputs)) + RUN_ID,
            retries=4,
            retry_delay_seconds=exponential_backoff(backoff_factor=2),
            retry_jitter_factor=0.2,
            retry_condition_fn=_retry_only_transient,
            on_completion=[crash_after_planned_task],
        )

    return decorate
