"""The outbox relay: the long-running sender that finishes whatever a flow's one attempt did not.

A flow's task enqueues its email and tries once (``tasks.mailer.deliver``); the relay owns the
rest. Every ``relay_interval`` seconds it sends what is due: messages left pending by an outage
(after their backoff), claims abandoned by a sender that died, and failed messages someone
retried. So the mail server can be down for hours and nothing is lost, and no flow fails for it.
It runs as a thread of the local stack, under its supervisor.
"""

from __future__ import annotations

import logging
import threading

from registry.calendar import SystemClock
from registry.db import Database
from tasks.mailer import Sender
from yeongye.settings import Settings

log = logging.getLogger(__name__)


class OutboxRelay:
    """Sends due outbox messages from a thread until stopped."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._sender = Sender(db, settings, SystemClock())
        self._interval = settings.relay_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                counts = self._sender.deliver_due()
            except Exception:  # noqa: BLE001 - a database hiccup must not end the relay; try again next round
                log.exception("메일 릴레이 오류, 다음 주기에 다시 시도 (outbox relay error, retrying)")
            else:
                if counts:
                    log.info("메일 릴레이 (outbox relay): %s", counts)
            self._stop.wait(self._interval)
