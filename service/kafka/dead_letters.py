"""Rejected Kafka records, sent to ``kafka.dead_letter_topic`` with why and where they came from."""

from __future__ import annotations

import logging

from service.core.events import Rejection

__all__ = ["DeadLetters"]

log = logging.getLogger("driftline.kafka")


class DeadLetters:
    """The dead letters of one source. Each carries the record's value and key, the headers
    ``reason``, ``detail`` and ``origin_topic``/``_partition``/``_offset``/``_timestamp``, and
    the record's CloudEvents headers. The source commits an input offset only once
    :meth:`delivered` says every letter before it was acknowledged (at-least-once)."""

    def __init__(self, topic: str | None):
        self.topic = topic
        self.count = 0  # records rejected, whether or not a topic is configured
        self._inflight: list = []  # (future, message)
        self._backlog: list = []  # messages whose send raised (broker away): resent before the next commit

    def send(self, producer, record, rejection: Rejection) -> None:
        self.count += 1
        if not self.topic:
            return
        headers = [("reason", rejection.reason.encode()), ("detail", rejection.detail[:1000].encode()),
                   ("origin_topic", record.topic.encode()), ("origin_partition", str(record.partition).encode()),
                   ("origin_offset", str(record.offset).encode()),
                   ("origin_timestamp", str(record.timestamp).encode())]
        headers += [(k, v) for k, v in (record.headers or []) if k.lower().startswith("ce")]
        self._send(producer, (self.topic, record.value, record.key, headers))

    def _send(self, producer, message: tuple) -> None:
        topic, value, key, headers = message
        try:
            future = producer.send(topic, value=value, key=key, headers=headers)
        except Exception as exc:  # broker away: retried before the next commit
            log.info("kafka source: dead letter postponed: %s", exc)
            self._backlog.append(message)
            return
        self._inflight.append((future, message))

    def delivered(self, producer) -> bool:
        """Flush the dead letters; True when every one is acknowledged (else they are resent later)."""
        if not self._inflight and not self._backlog:
            return True
        backlog, self._backlog = self._backlog, []
        for message in backlog:
            self._send(producer, message)
        producer.flush(timeout=15)
        inflight, self._inflight = self._inflight, []
        for future, message in inflight:
            if not future.is_done:
                self._inflight.append((future, message))
            elif future.failed():
                self._backlog.append(message)
        return not self._inflight and not self._backlog
