"""The stack's background loops: the outbox relay and the case recovery, each a thread under the supervisor.

The outbox relay is the long-running sender that finishes whatever a flow's one attempt did not
(``tasks.mailer.deliver``): every ``relay_interval`` seconds it sends what is due, meaning mail
left pending by an outage (after its backoff), claims abandoned by a sender that died, and
failed mail someone retried. The mail server can be down for hours: nothing is lost, no flow
fails for it.

The case recovery looks every ``recovery_interval`` seconds for open cases whose flow run is
missing, crashed or failed, and runs them again (``yeongye.recovery``), as ``yeongye doctor
--repair`` does on demand.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import httpx

from registry.calendar import SystemClock
from registry.db import Database
from tasks.mailer import Sender
from yeongye import prefect_api, recovery
from yeongye.settings import Settings

log = logging.getLogger(__name__)


class Periodic:
    """Runs ``action`` every ``interval`` seconds in a thread until stopped; an error waits for the next round."""

    def __init__(self, name: str, interval: float, action: Callable[[], object]) -> None:
        self.name = name
        self._interval = interval
        self._action = action
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
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
                outcome = self._action()
            except (httpx.TransportError, OSError) as error:
                # The Prefect server or the database restarting: one line, not a traceback a round.
                log.warning("%s: 연결 실패, 다음 주기에 다시 시도 (cannot connect, retrying): %r", self.name, error)
            except Exception:  # noqa: BLE001 - any other error must not end the loop either
                log.exception("%s 오류, 다음 주기에 다시 시도 (error, retrying next round)", self.name)
            else:
                if outcome:
                    log.info("%s: %s", self.name, outcome)
            self._stop.wait(self._interval)


def outbox_relay(db: Database, settings: Settings) -> Periodic:
    sender = Sender(db, settings, SystemClock())

    def relay() -> dict[str, int]:
        # Mail still waiting out an outage is retried every round; only what changed is worth a log line.
        counts = sender.deliver_due()
        return {status: n for status, n in counts.items() if status in ("sent", "failed")}

    return Periodic("outbox relay", settings.relay_interval, relay)


def case_recovery(db: Database, settings: Settings, api_url: str) -> Periodic:
    def repair() -> list[str]:
        with prefect_api.connected(settings, api_url):
            findings = recovery.examine(db, repair=True, automatic=True)
        # What needs a person is listed by `yeongye doctor`; logging it every round would bury the rest.
        return [f"{f.case_ref} {f.problem} repaired" for f in findings if f.action == "repaired"]

    return Periodic("case recovery", settings.recovery_interval, repair)
