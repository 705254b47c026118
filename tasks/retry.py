"""The one decorator of every task: its result persisted and replayed, only transient failures
retried (SMTP down, database busy), and no error's message ever handed to Prefect.

Bad input (a ``CaseError``, a template error) fails at once; retrying it would only repeat it.
A failure is recorded in full in the registry (``incident``) and Prefect sees its class and
``incident-<id>``: Prefect keeps a failed task's message as its state message and logs its
traceback, and an error's message may carry what a person wrote or a row's values (the registry's
engines hide statement parameters, ``registry.db``, but not every library does).
"""

from __future__ import annotations

import functools
import inspect
import smtplib
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import aiosmtplib
from prefect import Task
from prefect.cache_policies import RUN_ID, CachePolicy, Inputs
from prefect.context import TaskRunContext
from prefect.tasks import exponential_backoff
from sqlalchemy.exc import DBAPIError, OperationalError

from registry import notes
from tasks import runtime
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


class HandoffFailed(Exception):
    """What Prefect sees of a failed task: the error's class and an incident code, nothing of its message.

    ``transient`` carries the failed error's classification, so the retry condition still tells a
    mail server that is down from bad input.
    """

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class CodedError(Exception):
    """An error whose message is made of codes and references only, by construction (``NotThisCase``).

    It reaches Prefect as it is, so a run refused at its start says why in its state.
    """


UNRECORDED = "incident-unrecorded"


def is_transient(error: BaseException) -> bool:
    if isinstance(error, HandoffFailed):
        return error.transient
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


def _sanitised(fn: Callable[P, R], name: str) -> Callable[P, R]:
    """``fn``, failing with ``HandoffFailed`` (raised ``from None``: no chained traceback carries the
    original message) after recording the error in the registry."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (HandoffFailed, CodedError):
            raise  # a task called inside a task has recorded it; a coded message is safe as it is
        except Exception as error:  # noqa: BLE001 - every error is recorded, and none is shown
            case_ref = signature.bind_partial(*args, **kwargs).arguments.get("case_ref")
            code = record_incident(name, case_ref if isinstance(case_ref, str) else None, error)
            failure = HandoffFailed(f"{type(error).__name__} {code}", is_transient(error))
        # Raised outside the handler, so the original is not even its implicit ``__context__``.
        raise failure from None

    return run


def record_incident(task: str, case_ref: str | None, error: BaseException) -> str:
    """Keep ``error`` in full in the registry; returns ``incident-<id>``.

    When the registry cannot be written either (it may be what failed), the detail goes to the
    registry's own log file instead, never to Prefect's, and the code is ``incident-unrecorded``.
    """
    detail = "".join(traceback.format_exception(error))
    error_class = f"{type(error).__module__}.{type(error).__qualname__}"
    try:
        with runtime.transaction() as session:
            incident_id = notes.record_incident(
                session, case_ref=case_ref, task=task, error_class=error_class, detail=detail
            )
    except Exception as unrecorded:  # noqa: BLE001 - the fallback must not fail in its turn
        try:
            log = notes.incident_log(runtime.settings().data_dir)
            log.error("incident not recorded: task=%s case=%s\n%s", task, case_ref, detail)
            log.error("because: %s", "".join(traceback.format_exception(unrecorded)))
        except Exception:  # noqa: BLE001, S110 - nowhere left to write it; Prefect must still see nothing
            pass
        return UNRECORDED
    return f"incident-{incident_id}"


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
    A failure reaches Prefect only as ``HandoffFailed`` (see ``_sanitised``).
    """

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        return Task(
            fn=_sanitised(fn, name),
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
