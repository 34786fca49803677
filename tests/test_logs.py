"""The log throttle of ``driftline serve`` (service/observability/logs.py)."""

from __future__ import annotations

import logging

from service.observability.logs import RepeatFilter


def record(name: str, message: str, *args) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, args, None)


def test_a_repeated_message_is_written_once_per_interval_then_says_how_many_were_held():
    now = [0.0]
    throttle = RepeatFilter(interval=300, clock=lambda: now[0])
    connection = "Connection failed: KafkaConnectionError: %d ECONNREFUSED (backoff %.2f secs)"
    assert throttle.filter(record("kafka.net.manager", connection, 111, 0.23))
    for backoff in (0.4, 0.8, 1.6):  # the numbers differ, the message is the same
        now[0] += 10
        assert not throttle.filter(record("kafka.net.manager", connection, 111, backoff))
    assert throttle.filter(record("kafka.net.manager", "Bootstrap failed"))  # another message
    assert throttle.filter(record("driftline.engine", connection, 111, 0.4))  # not a throttled logger
    now[0] = 301
    again = record("kafka.net.manager", connection, 111, 2.0)
    assert throttle.filter(again)
    assert again.getMessage().endswith("(3 more like this in the last 300s)")
