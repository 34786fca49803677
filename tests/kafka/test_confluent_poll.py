"""The confluent-kafka client's poll, against a stand-in for librdkafka's consumer (no broker):
a message error fails the poll without skipping any record (at-least-once)."""

from __future__ import annotations

import confluent_kafka
import pytest

from service.kafka.clients.confluent import ConfluentConsumer


class Error:
    def __init__(self, code: int):
        self._code = code

    def code(self) -> int:
        return self._code


class Message:
    def __init__(self, partition: int, offset: int, error: Error | None = None):
        self._partition, self._offset, self._error = partition, offset, error

    def error(self):
        return self._error

    def topic(self):
        return "in"

    def partition(self):
        return self._partition

    def offset(self):
        return self._offset

    def timestamp(self):
        return (1, 1_700_000_000_000)

    def key(self):
        return b"m"

    def value(self):
        return b"{}"

    def headers(self):
        return None


class StandIn:
    """Hands out one message from poll and the rest from consume, records every seek."""

    def __init__(self, messages: list):
        self.messages, self.seeks = messages, []

    def poll(self, timeout):
        return self.messages.pop(0) if self.messages else None

    def consume(self, count, timeout):
        taken, self.messages = self.messages[:count], self.messages[count:]
        return taken

    def seek(self, partition):
        self.seeks.append((partition.topic, partition.partition, partition.offset))


def test_a_message_error_rewinds_every_partition_to_its_first_record_of_the_poll():
    failed = Error(confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART)
    stand_in = StandIn([Message(0, 10), Message(1, 3), Message(1, 4, failed), Message(0, 11), Message(1, 5)])
    with pytest.raises(confluent_kafka.KafkaException):
        ConfluentConsumer(stand_in, "earliest").poll(0.1, 100)
    assert sorted(stand_in.seeks) == [("in", 0, 10), ("in", 1, 3)]


def test_end_of_partition_is_no_error():
    eof = Error(confluent_kafka.KafkaError._PARTITION_EOF)
    stand_in = StandIn([Message(0, 10), Message(0, 11, eof)])
    batches = ConfluentConsumer(stand_in, "earliest").poll(0.1, 100)
    assert [record.offset for records in batches.values() for record in records] == [10]
    assert stand_in.seeks == []
