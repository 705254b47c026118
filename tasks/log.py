"""Structured logging for handoffs: events carry case references, steps and agency ids only.

Events go to the stdlib logger ``yeongye``; the worker lists it in PREFECT_LOGGING_EXTRA_LOGGERS,
so inside a flow run they also appear in the run's log in the Prefect UI.
"""

from __future__ import annotations

import logging

import structlog

from tasks import runtime

_configured = False


def _configure() -> None:
    global _configured
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if runtime.settings().log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            renderer,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )
    logging.getLogger("yeongye").setLevel(logging.INFO)
    _configured = True


def logger(case_ref: str, step: str, flow: str = "") -> structlog.stdlib.BoundLogger:
    """A logger bound to one case and step (design.md §4)."""
    if not _configured:
        _configure()
    return structlog.get_logger("yeongye").bind(case_ref=case_ref, step=step, flow=flow)  # type: ignore[no-any-return]
