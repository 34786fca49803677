"""Logging set-up of ``driftline serve``: one format, and no flood from a client library that
retries a lost connection several times a second (kafka-python logs every attempt)."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

# Loggers whose repeated messages are throttled: kafka-python's, and driftline's own Kafka
# source, which reports each failed reconnection.
THROTTLED = ("kafka", "driftline.kafka")
# A message seen again within this many seconds is counted, not written.
REPEAT_INTERVAL = 300.0
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


class RepeatFilter(logging.Filter):
    """Writes a message of a throttled logger at most once per ``interval``; numbers in it
    (backoff delays, ports, errno) do not make it a different message. The next one written
    says how many were held back."""

    def __init__(self, prefixes: tuple[str, ...] = THROTTLED, interval: float = REPEAT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.prefixes = prefixes
        self.interval = interval
        self.clock = clock
        self._seen: dict[tuple, list] = {}  # key -> [last written at, held back since]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not any(record.name == p or record.name.startswith(p + ".") for p in self.prefixes):
            return True
        key = (record.name, record.levelno, _NUMBER.sub("#", record.getMessage()))
        now = self.clock()
        with self._lock:
            entry = self._seen.get(key)
            if entry is not None and now - entry[0] < self.interval:
                entry[1] += 1
                return False
            held = entry[1] if entry is not None else 0
            self._seen[key] = [now, 0]
            if len(self._seen) > 1000:  # bounded: forget the oldest half
                for old in sorted(self._seen, key=lambda k: self._seen[k][0])[:500]:
                    del self._seen[old]
        if held:
            record.msg = f"{record.getMessage()} ({held} more like this in the last {self.interval:.0f}s)"
            record.args = None
        return True


def configure(level: str) -> None:
    """Root handler with driftline's format; kafka-python at WARNING (its INFO lines narrate
    every connection attempt) unless debugging, and repeated messages throttled."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level == "debug":
        return
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    for handler in logging.getLogger().handlers:
        handler.addFilter(RepeatFilter())  # one each: a filter's memory belongs to its handler
