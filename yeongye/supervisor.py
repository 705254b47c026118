"""Keeping the running stack running: a part that dies is started again, only a signal stops it all.

Why: ``yeongye up`` runs for days on a caseworker's machine. A worker that crashes (or is killed
by the OOM killer) used to take the whole stack down, and with it the answer page agencies reply
on. Now the stack restarts the part after 1 s, then 2, 4 … up to 60 s if it keeps dying (so a
part that cannot start does not spin the CPU), and back to 1 s once it has stayed up a while.

Child processes (``yeongye.processes.Child``) and threads of the stack process (mail capture,
answer page, the outbox relay) share one interface, ``Service``: ``start()``, ``stop()``,
``alive()``. ``stop()`` must also clean up after a part that died on its own, and ``start()``
must work again after ``stop()``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from yeongye.processes import quietly

log = logging.getLogger(__name__)

FIRST_DELAY = 1.0
MAX_DELAY = 60.0
STABLE_AFTER = 120.0
"""Seconds a part must stay up for its next death to count as the first again (restart after 1 s)."""


class Service(Protocol):
    """A part of the stack that runs until stopped."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def alive(self) -> bool: ...


class Startable(Protocol):
    """What ``InProcess`` wraps: a server that can be started once and stopped (MailCapture, AnswerServer)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class InProcess:
    """A server in a thread of the stack process (mail capture, answer page), as a ``Service``.

    Such servers cannot be started twice, so each start makes a new one with ``make``. Alive
    means its port still accepts connections: that is what their clients need, and it holds
    exactly while the server's thread serves.
    """

    def __init__(self, name: str, make: Callable[[], Startable], port: int) -> None:
        self.name = name
        self._make = make
        self._port = port
        self._current: Startable | None = None

    def start(self) -> None:
        server = self._make()
        server.start()
        self._current = server

    def stop(self) -> None:
        server, self._current = self._current, None
        if server is not None:
            server.stop()

    def alive(self) -> bool:
        if self._current is None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", self._port), timeout=2.0):
                return True
        except OSError:
            return False


@dataclass
class _Watched:
    service: Service
    up_since: float
    failures: int = 0
    restart_at: float | None = None


class Supervisor:
    """Restarts watched services that die, with exponential backoff, until the stop event is set."""

    def __init__(
        self,
        *,
        on_restart: Callable[[Service], None] | None = None,
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
        stable_after: float = STABLE_AFTER,
    ) -> None:
        self._on_restart = on_restart
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._stable_after = stable_after
        self._watched: list[_Watched] = []

    def watch(self, service: Service) -> None:
        """Watch a service that has just been started (the caller also arranges its final stop)."""
        self._watched.append(_Watched(service, time.monotonic()))

    def run(self, stop: threading.Event, tick: float = 1.0) -> None:
        """Check every ``tick`` seconds until ``stop`` is set; then return (stopping is the caller's)."""
        while not stop.wait(tick):
            self.check()

    def check(self) -> None:
        now = time.monotonic()
        for watched in self._watched:
            if watched.restart_at is None and not watched.service.alive():
                self._died(watched, now)
            if watched.restart_at is not None and now >= watched.restart_at:
                self._restart(watched, now)

    def _delay(self, failures: int) -> float:
        return float(min(self._first_delay * 2**failures, self._max_delay))

    def _died(self, watched: _Watched, now: float) -> None:
        name = watched.service.name
        if now - watched.up_since >= self._stable_after:
            watched.failures = 0
        delay = self._delay(watched.failures)
        log.warning(
            "%s 이(가) 중단되었습니다; %.0f초 후 다시 시작합니다 (%s died; restarting in %.0f s)",
            name,
            delay,
            name,
            delay,
        )
        # Whatever it left behind (helper processes, a half-closed server) must not block the new one.
        quietly(name, watched.service.stop)
        watched.restart_at = now + delay

    def _restart(self, watched: _Watched, now: float) -> None:
        service = watched.service
        watched.failures += 1
        try:
            service.start()
        except Exception as error:
            delay = self._delay(watched.failures)
            log.warning(
                "%s 다시 시작 실패 (%s); %.0f초 후 다시 시도합니다 (%s restart failed; retrying in %.0f s)",
                service.name,
                error,
                delay,
                service.name,
                delay,
            )
            quietly(service.name, service.stop)
            watched.restart_at = now + delay
            return
        watched.restart_at = None
        watched.up_since = now
        log.info("%s 다시 시작됨 (%s restarted)", service.name, service.name)
        if self._on_restart is not None:
            self._on_restart(service)
