"""How the Kafka source splits a polled batch into driftline events and CloudEvents (no broker)."""

from __future__ import annotations

from service.ingest.cloudevents import split_kafka_batch
from service.kafka.clients import Record

CE_HEADERS = [("ce_specversion", b"1.0"), ("ce_id", b"r-1"), ("ce_source", b"http://m"),
              ("ce_type", b"org.kubeflow.serving.inference.request")]


def record(offset: int, headers: list | None = None) -> Record:
    return Record("in", 0, offset, 0, b"m", b'{"n": %d}' % offset, headers)


def test_a_batch_without_headers_is_all_driftline_events_in_order():
    batch = [record(0), record(1, []), record(2)]
    values, records, cloud = split_kafka_batch(batch)
    assert values == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
    assert records == batch
    assert cloud == []


def test_cloudevents_are_told_apart_by_their_headers_and_other_headers_are_events():
    batch = [record(0), record(1, CE_HEADERS), record(2, [("trace", b"x")]), record(3)]
    values, records, cloud = split_kafka_batch(batch)
    assert values == [b'{"n": 0}', b'{"n": 2}', b'{"n": 3}']
    assert [r.offset for r in records] == [0, 2, 3]
    assert [r.offset for r in cloud] == [1]
