"""driftline on a real Apache Kafka broker: exact metrics, dead letters, CloudEvents headers,
a broker outage, and a replica killed mid-stream (scripts/kafka.sh starts the broker)."""

from __future__ import annotations

import logging
import random
import threading
import time

import orjson
import pytest
from kafka.partitioner.default import murmur2

from tests.kafka.conftest import Replica, kafka_config, read_topic, send, send_to_partitions, total, wait_for

pytestmark = pytest.mark.kafka

T0 = 1_795_000_000.0  # event timestamps: fixed, so runs are comparable


def small_models(window: int = 100, step: int = 50, first_n: int = 100) -> dict:
    return {"default": {"reference": {"first_n": first_n}, "window": {"size": window, "step": step}}}


def prediction(model: str, i: int, rng: random.Random, shift: float = 0.0) -> dict:
    x = rng.gauss(shift, 1.0)
    return {"kind": "prediction", "model": model, "model_version": "1", "id": f"{model}-{i}",
            "timestamp": T0 + i, "latency_ms": 10.0, "features": {"x": round(x, 4), "c": "u" if x > 0 else "v"},
            "prediction": int(x > 0), "score": 0.9 if x > 0 else 0.1}


def partition_of(key: str, partitions: int) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def models_on_distinct_partitions(count: int, partitions: int) -> list[str]:
    chosen: dict[int, str] = {}
    for i in range(1000):
        name = f"model{i}"
        chosen.setdefault(partition_of(name, partitions), name)
        if len(chosen) == count:
            break
    return [chosen[p] for p in sorted(chosen)]


def test_known_stream_gives_exact_metrics_dead_letters_and_lag(broker, names, live_server):
    topic = broker.create_topic(names("events"), partitions=2)
    dlq = names("dead")
    rng = random.Random(1)
    events: list = [prediction("alpha", i, rng) for i in range(300)]
    events += [prediction("beta", i, rng) for i in range(200)]
    by_id = {e["id"]: e for e in events}
    for i in range(100):  # 75 correct, 25 wrong
        predicted = by_id[f"alpha-{i}"]["prediction"]
        events.append({"kind": "label", "model": "alpha", "id": f"alpha-{i}", "timestamp": T0 + 1000 + i,
                       "label": predicted if i % 4 else 1 - predicted})
    events += [{"kind": "label", "model": "alpha", "id": f"nope-{i}", "label": 1, "timestamp": T0 + 2000}
               for i in range(5)]
    events += [{"kind": "label", "model": "alpha", "id": f"alpha-{i}", "label": 0, "timestamp": T0 + 2001}
               for i in range(3)]
    events += [{"kind": "infra", "model": "alpha", "instance": "alpha-0", "cpu_utilization": 0.5,
                "timestamp": T0 + 3000, **({"event": "restart"} if i % 2 else {})} for i in range(4)]
    bad = [b"not json", b"{broken", b"\x00\x01binary", orjson.dumps({"kind": "nope", "model": "alpha"}),
           orjson.dumps({"kind": "weird", "model": "beta"}),
           orjson.dumps({"kind": "prediction", "model": "no spaces!"})]
    send(broker.bootstrap, topic, events)
    origins = send_to_partitions(broker.bootstrap, topic, bad, partitions=2)

    server = live_server({"kafka": kafka_config(broker.bootstrap, [topic], names("group"), names("state"), dlq),
                          "models": small_models()})
    expected_total = 300 + 200 + 108 + 4

    def consumed():
        m = server.metrics()
        return total(m, "driftline_events_total") == expected_total and total(m, "driftline_events_rejected_total") == 6
    wait_for(consumed, 60, message="all events consumed")
    m = server.metrics()
    assert total(m, "driftline_events_total", model="alpha", kind="prediction") == 300
    assert total(m, "driftline_events_total", model="beta", kind="prediction") == 200
    assert total(m, "driftline_events_total", model="alpha", kind="label") == 108
    assert total(m, "driftline_events_total", model="alpha", kind="infra") == 4
    assert total(m, "driftline_labels_total", model="alpha", outcome="matched") == 100
    assert total(m, "driftline_labels_total", model="alpha", outcome="unmatched") == 5
    assert total(m, "driftline_labels_total", model="alpha", outcome="duplicate") == 3
    assert total(m, "driftline_label_correct_total", model="alpha") == 75
    assert total(m, "driftline_infra_events_total", model="alpha", event="restart") == 2
    assert total(m, "driftline_events_rejected_total", reason="invalid_json") == 3
    assert total(m, "driftline_events_rejected_total", reason="unknown_kind") == 2
    assert total(m, "driftline_events_rejected_total", reason="invalid_model") == 1
    assert total(m, "driftline_prediction_latency_seconds_count", model="alpha") == 300

    # Lag reaches 0 on both partitions once everything is committed and probed.
    wait_for(lambda: all(total(server.metrics(), "driftline_consumer_lag_messages", topic=topic, partition=str(p)) == 0
                         and (("driftline_consumer_lag_messages", frozenset({("topic", topic), ("partition", str(p))}))
                              in server.metrics()) for p in (0, 1)), 20, message="lag 0")
    assert server.client.get("/readyz").status_code == 200

    dead = read_topic(broker.bootstrap, dlq, expected=6)
    assert len(dead) == 6
    reasons = sorted(dict(r.headers)["reason"].decode() for r in dead)
    assert reasons == sorted(["invalid_json"] * 3 + ["unknown_kind"] * 2 + ["invalid_model"])
    values = {r.value for r in dead}
    assert values == set(bad)
    for record in dead:
        headers = dict(record.headers)
        origin = (headers["origin_topic"].decode(), int(headers["origin_partition"]), int(headers["origin_offset"]),
                  int(headers["origin_timestamp"]))
        assert origin == origins[record.value]
        assert headers["detail"]
    assert {origin[1] for origin in origins.values()} == {0, 1}


def test_no_offset_is_committed_past_a_record_whose_dead_letter_is_not_acknowledged(broker, names, live_server,
                                                                                 caplog):
    """While the producer cannot deliver to the dead-letter topic (its first send raises, as
    kafka-python's does when the topic's metadata cannot be fetched; later ones fail after
    the send, as a batch past its delivery timeout does), the good records around a bad one
    are processed but the committed offset stays at or below the bad record; once the
    producer works again the letter is sent, names its origin, and everything is committed."""
    from kafka.errors import KafkaTimeoutError
    from kafka.future import Future
    from kafka.structs import TopicPartition

    caplog.set_level(logging.INFO, logger="driftline.kafka")
    topic = broker.create_topic(names("events"), partitions=1)
    dlq, group = names("dead"), names("group")
    server = live_server({"kafka": kafka_config(broker.bootstrap, [topic], group, names("state"), dlq),
                          "models": small_models()})
    wait_for(lambda: server.client.get("/readyz").status_code == 200, 30, message="ready")
    [source] = [c for c in server.runtime.components if c.name == "kafka"]
    producer = source._producer
    real_send = producer.send

    refused = []

    def send_refusing_dead_letters(topic_name, *args, **kwargs):
        if topic_name != dlq:
            return real_send(topic_name, *args, **kwargs)
        refused.append(topic_name)
        if len(refused) == 1:
            raise KafkaTimeoutError(f"Failed to update metadata after 10.0 secs (topic {topic_name})")
        return Future().failure(KafkaTimeoutError("Batch for dead-letters expired after 30000 ms"))

    producer.send = send_refusing_dead_letters
    rng = random.Random(5)
    send(broker.bootstrap, topic, [prediction("solo", i, rng) for i in range(50)])
    [(_, _, bad_offset, bad_timestamp)] = send_to_partitions(broker.bootstrap, topic, [b"not json"], 1).values()
    send(broker.bootstrap, topic, [prediction("solo", 50 + i, rng) for i in range(50)])
    assert bad_offset == 50
    admin = broker.admin()
    try:
        def committed() -> int | None:
            meta = admin.list_group_offsets(group).get(group, {}).get(TopicPartition(topic, 0))
            return None if meta is None else meta.offset

        wait_for(lambda: total(server.metrics(), "driftline_events_total") == 100, 90, message="good records consumed")
        assert total(server.metrics(), "driftline_events_rejected_total", reason="invalid_json") == 1
        # Checkpoints come every second, each one a commit postponed until the letter is sent.
        wait_for(lambda: sum("dead letters not yet delivered" in r.getMessage() for r in caplog.records) >= 3, 30,
                 message="three commits postponed")
        assert committed() is None or committed() <= bad_offset
        assert len(refused) >= 3
        producer.send = real_send
        wait_for(lambda: committed() == 101, 30, message="everything committed once the letter is sent")
    finally:
        admin.close()
    [letter] = read_topic(broker.bootstrap, dlq, expected=1)
    headers = dict(letter.headers)
    assert letter.value == b"not json" and headers["reason"] == b"invalid_json"
    assert (headers["origin_topic"].decode(), int(headers["origin_partition"]), int(headers["origin_offset"]),
            int(headers["origin_timestamp"])) == (topic, 0, bad_offset, bad_timestamp)


def test_cloudevents_records_from_kserve_and_seldon_loggers(broker, names, live_server):
    topic = broker.create_topic(names("ce"), partitions=1)
    records = []
    for n in range(10):  # KServe V2 (open inference protocol), as Knative's KafkaSink writes them
        common = [("ce_specversion", b"1.0"), ("ce_id", f"req-{n}".encode()),
                  ("ce_inferenceservicename", b"sklearn-iris"), ("ce_namespace", b"default"),
                  ("ce_component", b"predictor"), ("ce_endpoint", b"default"),
                  ("ce_source", b"http://localhost:9081/"), ("content-type", b"application/json")]
        request = {"id": f"req-{n}", "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                                                  "data": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}]}
        response = {"model_name": "sklearn-iris", "model_version": "v1", "id": f"req-{n}",
                    "outputs": [{"name": "output-0", "shape": [2], "datatype": "INT64", "data": [1, 2]}]}
        records.append((common + [("ce_type", b"org.kubeflow.serving.inference.request"),
                                  ("ce_time", b"2026-11-28T08:00:00.000Z")], request))
        records.append((common + [("ce_type", b"org.kubeflow.serving.inference.response"),
                                  ("ce_time", b"2026-11-28T08:00:00.025Z")], response))
    # Seldon Core's request logger: plain Ce-* headers, SeldonMessage bodies.
    seldon = [("Ce-Specversion", b"1.0"), ("Ce-Source", b"http://income:9000"), ("Ce-Id", b"s-1"),
              ("Ce-Requestid", b"s-1"), ("Ce-Modelid", b"income-classifier"),
              ("Ce-Inferenceservicename", b"income"), ("Ce-Namespace", b"seldon"), ("Ce-Endpoint", b"default")]
    records.append((seldon + [("Ce-Type", b"io.seldon.serving.inference.request")],
                    {"data": {"names": ["age", "hours"], "ndarray": [[39, 40]]}}))
    records.append((seldon + [("Ce-Type", b"io.seldon.serving.inference.response")],
                    {"data": {"names": ["p0", "p1"], "ndarray": [[0.2, 0.8]]}, "meta": {}}))
    records.append(([("ce_specversion", b"1.0"), ("ce_source", b"/x"),
                     ("ce_type", b"org.kubeflow.serving.inference.request"), ("ce_id", b"x"),
                     ("ce_inferenceservicename", b"sklearn-iris")], b"not json"))
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for headers, body in records:
        producer.send(topic, value=body if isinstance(body, bytes) else orjson.dumps(body), headers=headers)
    producer.flush()
    producer.close()

    dlq = names("dead")
    server = live_server({"kafka": kafka_config(broker.bootstrap, [topic], names("group"), names("state"), dlq)})
    wait_for(lambda: total(server.metrics(), "driftline_events_total", kind="prediction") == 21, 60,
             message="21 prediction events")
    m = server.metrics()
    assert total(m, "driftline_events_total", model="sklearn-iris", kind="prediction") == 20
    assert total(m, "driftline_events_total", model="income", kind="prediction") == 1
    assert total(m, "driftline_prediction_latency_seconds_count", model="sklearn-iris", model_version="v1") == 20
    # 25 ms between each request and its response (ce_time)
    latency_sum = total(m, "driftline_prediction_latency_seconds_sum", model="sklearn-iris")
    assert latency_sum == pytest.approx(20 * 0.025, rel=1e-3)
    assert total(m, "driftline_events_rejected_total", reason="invalid_json") == 1
    dead = read_topic(broker.bootstrap, dlq, expected=1)
    assert [dict(r.headers)["reason"] for r in dead] == [b"invalid_json"]
    assert dict(dead[0].headers)["ce_id"] == b"x"


def test_broker_killed_and_restarted_mid_stream_loses_and_duplicates_nothing(broker, names, live_server):
    topic = broker.create_topic(names("outage"), partitions=2)
    group = names("group")
    server = live_server({"kafka": kafka_config(broker.bootstrap, [topic], group, names("state"),
                                                names("dead")),
                          "models": small_models()})
    wait_for(lambda: server.client.get("/readyz").status_code == 200, 30, message="ready")
    rng = random.Random(2)
    events = [prediction(f"m{i % 3}", i, rng) for i in range(3000)]
    produced = {"n": 0, "error": None}

    def produce_slowly():
        from service.commands.produce import make_producer

        producer = make_producer(broker.bootstrap, linger_ms=5, delivery_timeout_ms=120_000,
                                 request_timeout_ms=5_000, max_block_ms=120_000)
        try:
            for i, event in enumerate(events):
                producer.send(topic, value=orjson.dumps(event), key=event["model"].encode())
                produced["n"] = i + 1
                if i % 50 == 49:
                    time.sleep(0.05)  # ~1000 events/s
            producer.flush(timeout=120)
        except Exception as exc:  # surfaced below
            produced["error"] = exc
        finally:
            producer.close(timeout=10)

    thread = threading.Thread(target=produce_slowly, daemon=True)
    thread.start()
    wait_for(lambda: total(server.metrics(), "driftline_events_total") >= 800, 30, message="consumption under way")
    broker.kill()
    wait_for(lambda: server.client.get("/readyz").status_code == 503, 30, interval=0.5, message="/readyz 503")
    reasons = server.client.get("/readyz").json()["reasons"]
    assert any(reason.startswith("kafka:") for reason in reasons), reasons
    time.sleep(2)
    broker.start()
    thread.join(timeout=150)
    assert not thread.is_alive() and produced["error"] is None, produced
    wait_for(lambda: total(server.metrics(), "driftline_events_total") >= 3000, 90, message="all 3000 consumed")
    wait_for(lambda: server.client.get("/readyz").status_code == 200, 30, message="ready again")
    # Everything processed and committed: a rewind would start from here, so nothing can be
    # applied a second time after this.
    admin = broker.admin()
    try:
        wait_for(lambda: sum(meta.offset for meta in admin.list_group_offsets(group).get(group, {}).values()) == 3000,
                 60, message="all 3000 committed")
    finally:
        admin.close()
    m = server.metrics()
    for k in range(3):
        assert total(m, "driftline_events_total", model=f"m{k}", kind="prediction") == 1000
    models = {s["model"]: s for s in server.client.get("/v1/models").json()}
    assert {name: s["window"]["samples"] for name, s in models.items()} == {"m0": 100, "m1": 100, "m2": 100}


def test_a_replica_killed_mid_stream_changes_no_state_or_verdict(broker, names, live_server, tmp_path):
    partitions = 4
    topic = broker.create_topic(names("scale"), partitions=partitions)
    models = models_on_distinct_partitions(partitions, partitions)
    rng = random.Random(3)
    events = []
    for i in range(600):
        for model in models:
            shift = 2.0 if i >= 400 else 0.0  # drift in the last third
            events.append(prediction(model, i, rng, shift))
            if i >= 100 and i % 3 == 0:  # a label for every third earlier prediction
                j = i - 100
                events.append({"kind": "label", "model": model, "id": f"{model}-{j}", "label": int(j % 5 != 0),
                               "timestamp": T0 + 5000 + i})
    config = {"models": small_models(window=200, step=100, first_n=200)}

    # Two replicas in one group share the 4 partitions; the events arrive at ~600/s and one
    # replica is SIGKILLed while they do, with progress that is neither checkpointed nor committed.
    group, state = names("pair"), names("pair-state")
    # A 10 s session (not the suite's 6 s): on a loaded 2-core machine a heartbeat can come late,
    # and each member expired restarts the rebalance; CI once saw two fresh members not settle in 120 s.
    kafka = kafka_config(broker.bootstrap, [topic], group, state, None, max_poll_records=100,
                         session_timeout="10s")
    first = Replica({**config, "kafka": kafka}, tmp_path, "first")
    second = Replica({**config, "kafka": kafka}, tmp_path, "second")
    try:
        def owned(replica):
            return sum(1 for (n, _ls) in replica.metrics() if n == "driftline_consumer_lag_messages")
        try:
            wait_for(lambda: [owned(first), owned(second)] == [2, 2], 180, interval=0.5,
                     message="two replicas sharing 4 partitions")
        except AssertionError as exc:  # say where it stood: partitions owned, and each replica's log
            raise AssertionError(f"{exc}; partitions owned {[owned(first), owned(second)]}\n"
                                 f"first:\n{first.log()}\nsecond:\n{second.log()}") from None
        producer = threading.Thread(target=send, args=(broker.bootstrap, topic, events),
                                    kwargs={"rate": 600}, daemon=True)
        producer.start()
        wait_for(lambda: total(first.metrics(), "driftline_events_total") >= 1000, 60, interval=0.1,
                 message="the first replica well into the stream")
        first.kill()
        producer.join(timeout=60)
        assert not producer.is_alive()

        # One replica alone, on the same input: the reference result.
        alone = live_server({**config, "kafka": kafka_config(broker.bootstrap, [topic], names("alone"),
                                                             names("alone-state"), None)})
        wait_for(lambda: total(alone.metrics(), "driftline_events_total") == len(events), 150,
                 message="the single replica consumed everything")
        reference = snapshot(alone.client)
        assert len(reference) == partitions
        assert all(r["dataset_drift"] is True for r in reference.values()), reference

        try:
            wait_for(lambda: snapshot(second.client) == reference, 90, interval=1.0,
                     message="the survivor reaching the single-replica state")
        except AssertionError:
            assert snapshot(second.client) == reference, second.log()
        lag = second.metrics()
        assert sum(1 for (n, _) in lag if n == "driftline_consumer_lag_messages") == partitions
        # The killed replica's models came to the survivor through the changelog: it counted
        # fewer of their events than they have, yet holds the same state.
        per_model = {m: sum(1 for e in events if e["model"] == m) for m in models}
        counted = {m: total(lag, "driftline_events_total", model=m) for m in models}
        assert any(counted[m] < per_model[m] for m in models), (counted, per_model)
        wait_for(lambda: total(second.metrics(), "driftline_consumer_lag_messages") == 0, 20, message="lag 0")
    finally:
        first.stop()
        second.stop()


def snapshot(client) -> dict:
    """Per-model state and verdicts as the HTTP API shows them: what must not depend on which
    replica processed what. (Evaluation counts and exact drift scores depend on how the stream
    was cut into batches, since the engine evaluates at most once per batch, so they are left out.)"""
    out = {}
    for summary in client.get("/v1/models").json():
        model = summary["model"]
        drift = client.get(f"/v1/models/{model}/drift")
        body = drift.json() if drift.status_code == 200 else {}
        out[model] = {
            "samples": summary["window"]["samples"], "reference_rows": summary["reference"]["rows"],
            "dataset_drift": summary["dataset_drift"], "drift_share": summary["drift_share"],
            "performance": summary["performance"], "labels_pending": summary["labels_pending"],
            "features": {name: f["drift"] for name, f in body.get("features", {}).items()},
        }
    return out


def test_replayed_records_already_in_the_changelog_state_are_not_applied_twice(broker, names, live_server):
    """A crash between the changelog write and the offset commit: the next owner re-reads
    records its restored state already holds, and skips them (state changes exactly once)."""
    topic = broker.create_topic(names("replay"), partitions=1)
    group, state_topic = names("group"), names("state")
    rng = random.Random(4)
    events = [prediction("solo", i, rng) for i in range(300)]
    events += [{"kind": "label", "model": "solo", "id": f"solo-{i}", "label": 1, "timestamp": T0 + 900}
               for i in range(50)]
    send(broker.bootstrap, topic, events)
    config = {"kafka": kafka_config(broker.bootstrap, [topic], group, state_topic, None),
              "models": small_models()}
    first = live_server(config)
    admin = broker.admin()
    try:
        def committed() -> int:
            offsets = admin.list_group_offsets(group).get(group, {})
            return sum(meta.offset for meta in offsets.values())
        wait_for(lambda: committed() == len(events), 60, message="everything checkpointed and committed")
        before = snapshot(first.client)
        first.stop()
    finally:
        admin.close()

    # Simulate the crash window: offsets back to 0, and no partition marker in the changelog.
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.structs import OffsetAndMetadata, TopicPartition

    rewinder = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    rewinder.assign([tp])
    rewinder.commit({tp: OffsetAndMetadata(0, "", -1)})
    rewinder.close(autocommit=False)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    producer.send(state_topic, key=b"\x00offsets", value=None, partition=0)
    producer.flush()
    producer.close()

    second = live_server(config)
    wait_for(lambda: snapshot(second.client) == before, 60, message="state restored from the changelog")
    wait_for(lambda: total(second.metrics(), "driftline_consumer_lag_messages", topic=topic) == 0
             and ("driftline_consumer_lag_messages", frozenset({("topic", topic), ("partition", "0")}))
             in second.metrics(), 30, message="the replay read to the end")
    [source] = [c for c in second.runtime.components if c.name == "kafka"]
    wait_for(lambda: source.skipped == len(events), 30, message="every replayed record skipped")
    assert total(second.metrics(), "driftline_events_total") == 0
    assert snapshot(second.client) == before
    send(broker.bootstrap, topic, [prediction("solo", 1000 + i, rng) for i in range(10)])
    wait_for(lambda: total(second.metrics(), "driftline_events_total", model="solo", kind="prediction") == 10, 30,
             message="new records processed")


def test_every_trigger_is_also_published_to_the_trigger_topic(broker, names, live_server):
    topic = broker.create_topic(names("events"))
    triggers = names("triggers")
    server = live_server({"kafka": kafka_config(broker.bootstrap, [topic], names("group"), None, None,
                                                trigger_topic=triggers)})
    wait_for(lambda: server.client.get("/readyz").status_code == 200, 30, message="ready")
    event = orjson.dumps(prediction("fraud", 0, random.Random(0)))
    assert server.client.post("/v1/events", content=event).status_code == 202
    response = server.client.post("/v1/models/fraud/retrain", json={"note": "by hand"})
    assert response.status_code == 202, response.text
    [record] = read_topic(broker.bootstrap, triggers, expected=1)
    payload = orjson.loads(record.value)
    assert record.key == b"fraud"
    assert payload["type"] == "driftline.retrain.requested" and payload["reason"] == "manual"
    assert payload["id"] == server.client.get("/v1/triggers", headers=server.admin_headers).json()["triggers"][0]["id"]
