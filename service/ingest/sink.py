"""The owner of the HTTP sink's joiner (``POST /v1/cloudevents``, see :mod:`service.http.cloudevents_routes`)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from service.config import CloudEventsConfig
from service.core.engine import Engine
from service.core.events import Decoded
from service.ingest.joiner import CloudEventJoiner, decode_http
from service.ingest.journal import PendingJournal, open_journal

__all__ = ["CloudEventsSink"]

log = logging.getLogger("driftline.cloudevents")


class CloudEventsSink:
    """The owner of the HTTP sink's joiner: a runtime component that journals pending halves
    in ``state_dir`` and emits the expired ones on a timer. On stop the pending halves stay
    in the journal; after a restart they still join, or expire on the first tick."""

    name = "cloudevents"

    def __init__(self, engine: Engine, config: CloudEventsConfig, journal_path: Path):
        self.engine = engine
        self.config = config
        self.journal_path = journal_path
        self.joiner: CloudEventJoiner | None = None
        self.journal_error: str | None = None  # why the journal could not be opened (a full disk)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        joiner = CloudEventJoiner(self.engine.validator, ttl=self.config.ttl, max_pending=self.config.max_pending,
                                  max_pending_bytes=self.config.max_pending_bytes, clock=self.engine.clock,
                                  journal=self._open_journal())
        self.joiner = joiner
        if len(joiner):
            log.info("cloudevents: %d pending half(s) restored from %s", len(joiner), self.journal_path)
        self._stop.clear()
        self._thread = threading.Thread(target=self._expire_loop, args=(joiner,), name="driftline-cloudevents",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.joiner is not None and self.joiner.journal is not None:
            self.joiner.journal.close()

    def ready(self) -> tuple[bool, str]:
        if self.joiner is None:
            return False, "starting"
        if self.journal_error is not None:
            return False, f"pending halves cannot be journaled in {self.journal_path}: {self.journal_error}"
        return True, "ok"

    def _open_journal(self) -> PendingJournal | None:
        """The journal, or None while it cannot be opened (a full disk: halves then wait in
        memory only, and the timer tries again)."""
        journal, error = open_journal(self.journal_path)
        if journal is None:
            if self.journal_error is None:
                log.error("cloudevents: journal %s cannot be opened (%s); pending halves are kept in memory only "
                          "until it can", self.journal_path, error)
            self.journal_error = error
            return None
        if self.journal_error is not None:
            log.warning("cloudevents: journal %s opened again", self.journal_path)
        self.journal_error = None
        return journal

    def receive(self, headers: list[tuple[bytes, bytes]], body: bytes) -> Decoded:
        """One HTTP request -> its events, processed by the engine (call off the event loop)."""
        if self.joiner is None:
            raise RuntimeError("the CloudEvents sink is not started")
        decoded = decode_http(self.joiner, headers, body)
        if decoded.accepted or decoded.rejected:
            self.engine.process(decoded)
        return decoded

    def _expire_loop(self, joiner: CloudEventJoiner) -> None:
        interval = min(1.0, self.config.ttl / 4)
        while not self._stop.wait(interval):
            if joiner.journal is None:
                journal = self._open_journal()
                if journal is not None:
                    joiner.attach(journal)
            try:
                for decoded in joiner.expire().values():
                    self.engine.process(decoded)
            except Exception:  # the timer never dies; the next tick retries
                log.exception("cloudevents: expiring pending halves failed")
