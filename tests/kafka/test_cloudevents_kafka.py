"""KServe/Seldon CloudEvents as Kafka records on a real broker: events made by the official
cloudevents SDK (binary and structured mode), and a request whose replica is killed (SIGKILL)
before its response arrives."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from tests.kafka.conftest import Replica, kafka_config, total, wait_for

pytestmark = pytest.mark.kafka

KSERVE_REQUEST = "org.kubeflow.serving.inference.request"
KSERVE_RESPONSE = "org.kubeflow.serving.inference.response"


def sdk_record(ce_type: str, ce_id: str, data, structured: bool, millis: int = 0):
    """A Kafka message as the SDK writes it, keyed by the inference service (partitionkey)."""
    from cloudevents.core.bindings import kafka
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent

    event = CloudEvent(attributes={
        "type": ce_type, "source": "http://localhost:9081/", "id": ce_id, "inferenceservicename": "iris",
        "partitionkey": "iris", "datacontenttype": "application/json",
        "time": datetime(2026, 11, 28, 8, 0, 0, millis * 1000, tzinfo=UTC)}, data=data)
    return (kafka.to_structured if structured else kafka.to_binary)(event, JSONFormat())


def produce(bootstrap: str, topic: str, messages) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for message in messages:
            key = message.key.encode() if isinstance(message.key, str) else message.key
            producer.send(topic, key=key, value=message.value, headers=list(message.headers.items()))
        producer.flush()
    finally:
        producer.close()


def test_sdk_records_in_binary_and_structured_mode_join(broker, names, live_server):
    topic = broker.create_topic(names("ce-sdk"), partitions=1)
    messages = []
    for n in range(4):
        structured_request, structured_response = n % 2 == 0, n < 2
        # bytes data: the SDK writes data_base64 in structured mode
        messages.append(sdk_record(KSERVE_REQUEST, f"r {n}", orjson.dumps({"instances": [[1.0, 2.0 + n]]}),
                                   structured_request))
        messages.append(sdk_record(KSERVE_RESPONSE, f"r {n}", {"predictions": [n % 2], "model_version": "v1"},
                                   structured_response, millis=20))
    produce(broker.bootstrap, topic, messages)
    server = live_server({"kafka": kafka_config(broker.bootstrap, [topic], names("group"), names("state"),
                                                names("dead"))})
    wait_for(lambda: total(server.metrics(), "driftline_prediction_latency_seconds_count", model="iris") == 4, 60,
             message="4 joined predictions")
    m = server.metrics()
    assert total(m, "driftline_events_total", model="iris", kind="prediction") == 4
    assert total(m, "driftline_prediction_latency_seconds_sum", model="iris") == pytest.approx(4 * 0.020, rel=1e-3)
    assert total(m, "driftline_events_rejected_total") == 0
    assert total(m, "driftline_cloudevents_pending", source="kafka") == 0
    # the Kafka binding does not percent-encode: the id is the header value as written
    labels = [{"kind": "label", "model": "iris", "id": f"r {n}", "label": n % 2} for n in range(4)]
    assert server.client.post("/v1/events", json=labels).status_code == 202
    assert server.metric("driftline_labels_total", model="iris", outcome="matched") == 4


def committed(bootstrap: str, group: str, topic: str) -> int | None:
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return consumer.committed(TopicPartition(topic, 0))
    finally:
        consumer.close(autocommit=False)


@pytest.mark.parametrize("changelog", [True, False], ids=["state_topic", "journal"])
def test_a_request_pending_when_its_replica_is_killed_joins_its_response_after_the_restart(
        broker, names, tmp_path, changelog):
    """The request is consumed and its offset committed; the replica is SIGKILLed; the response
    arrives; the restarted replica joins them (features, prediction and latency in one event)."""
    topic = broker.create_topic(names("ce-kill"), partitions=1)
    group = names("group")
    config = {"kafka": kafka_config(broker.bootstrap, [topic], group, names("state") if changelog else None,
                                    names("dead")),
              "cloudevents": {"ttl": "120s"}}
    first = Replica(config, tmp_path, "replica")
    try:
        wait_for(first.ready, 60, message="replica ready")
        produce(broker.bootstrap, topic, [sdk_record(KSERVE_REQUEST, "k1", {"instances": [[5.1, 3.5]]}, False)])
        wait_for(lambda: total(first.metrics(), "driftline_cloudevents_pending", source="kafka") == 1, 60,
                 message="the request pending")
        wait_for(lambda: committed(broker.bootstrap, group, topic) == 1, 60, message="the request's offset committed")
    finally:
        first.kill()
        first.stop()
    produce(broker.bootstrap, topic, [sdk_record(KSERVE_RESPONSE, "k1", {"predictions": [1], "model_version": "v1"},
                                                 False, millis=30)])
    second = Replica(config, tmp_path, "replica")  # same name: same state_dir
    try:
        wait_for(lambda: total(second.metrics(), "driftline_events_total", model="iris") == 1, 90,
                 message=f"one prediction event; log:\n{second.log()}")
        m = second.metrics()
        assert total(m, "driftline_prediction_latency_seconds_count", model="iris", model_version="v1") == 1
        assert total(m, "driftline_prediction_latency_seconds_sum", model="iris") == pytest.approx(0.030, rel=1e-3)
        assert total(m, "driftline_cloudevents_pending", source="kafka") == 0
    finally:
        second.stop()
