"""KServe / Seldon inference-logger CloudEvents -> prediction events (service.ingest),
over HTTP (POST /v1/cloudevents) with payloads shaped as the loggers send them."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from service.core.events import Validator
from service.ingest.cloudevents import attributes, is_cloudevent
from service.ingest.joiner import CloudEventJoiner, decode_http
from service.ingest.journal import PendingJournal, open_journal

KSERVE_REQUEST = "org.kubeflow.serving.inference.request"
KSERVE_RESPONSE = "org.kubeflow.serving.inference.response"


def kserve_headers(ce_type: str, ce_id: str, isvc: str = "sklearn-iris", time: str | None = None) -> dict:
    """Binary-mode headers as KServe's agent (logger) sends them."""
    headers = {"ce-specversion": "1.0", "ce-id": ce_id, "ce-type": ce_type, "ce-source": "http://localhost:9081/",
               "ce-inferenceservicename": isvc, "ce-namespace": "default", "ce-component": "predictor",
               "ce-endpoint": "default", "content-type": "application/json"}
    if time:
        headers["ce-time"] = time
    return headers


def joiner(ttl: float = 30.0, max_pending: int = 100, clock=None) -> CloudEventJoiner:
    return CloudEventJoiner(Validator(), ttl=ttl, max_pending=max_pending, clock=clock or (lambda: 1000.0))


def as_dicts(decoded) -> list[dict]:
    out = []
    for event in decoded.predictions:
        if isinstance(event, dict):
            out.append(event)
        else:
            out.append({f: getattr(event, f) for f in event.__struct_fields__})
    return out


def test_v1_request_and_response_join_on_ce_id():
    j = joiner()
    request = {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}
    response = {"predictions": [1, 2]}
    first = decode_http(j, kserve_headers(KSERVE_REQUEST, "abc", time="2026-11-28T08:00:00Z").items(),
                   orjson.dumps(request))
    assert first.accepted == 0 and not first.rejected and len(j) == 1
    second = decode_http(j, kserve_headers(KSERVE_RESPONSE, "abc", time="2026-11-28T08:00:00.040Z").items(),
                    orjson.dumps(response))
    events = as_dicts(second)
    assert len(events) == 2 and len(j) == 0
    assert [e["id"] for e in events] == ["abc:0", "abc:1"]
    assert events[0]["model"] == "sklearn-iris"
    assert events[0]["features"] == {"f0": 6.8, "f1": 2.8, "f2": 4.8, "f3": 1.4}
    assert [e["prediction"] for e in events] == [1, 2]
    assert events[0]["latency_ms"] == pytest.approx(40.0, abs=0.01)


def test_v2_open_inference_protocol_bodies_and_response_first():
    j = joiner()
    response = {"model_name": "income", "model_version": "3", "id": "r1",
                "outputs": [{"name": "predict", "shape": [2], "datatype": "INT64", "data": [0, 1]},
                            {"name": "predict_proba", "shape": [2, 2], "datatype": "FP32",
                             "data": [0.7, 0.3, 0.2, 0.8]}]}
    request = {"id": "r1", "inputs": [
        {"name": "age", "shape": [2, 1], "datatype": "INT64", "data": [39, 50]},
        {"name": "workclass", "shape": [2, 1], "datatype": "BYTES", "data": ["Private", "State-gov"]}]}
    first = decode_http(j, kserve_headers(KSERVE_RESPONSE, "r1", isvc="income").items(), orjson.dumps(response))
    assert first.accepted == 0
    events = as_dicts(decode_http(j, kserve_headers(KSERVE_REQUEST, "r1", isvc="income").items(),
                                  orjson.dumps(request)))
    assert [e["features"] for e in events] == [{"age": 39, "workclass": "Private"},
                                               {"age": 50, "workclass": "State-gov"}]
    assert [e["prediction"] for e in events] == [0, 1]
    assert [e["score"] for e in events] == pytest.approx([0.3, 0.8])
    assert {e["model_version"] for e in events} == {"3"}


def test_v2_single_matrix_input_gives_f_columns_and_probabilities_give_argmax():
    j = joiner()
    request = {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]}
    response = {"model_name": "m", "outputs": [{"name": "output-0", "shape": [1, 2], "datatype": "FP32",
                                                "data": [0.1, 0.9]}]}
    decode_http(j, kserve_headers(KSERVE_REQUEST, "x", isvc="m").items(), orjson.dumps(request))
    (event,) = as_dicts(decode_http(j, kserve_headers(KSERVE_RESPONSE, "x", isvc="m").items(), orjson.dumps(response)))
    assert event["id"] == "x"
    assert event["features"] == {"f0": 1.0, "f1": 2.0, "f2": 3.0}
    assert event["prediction"] == 1 and event["score"] == pytest.approx(0.9)


def test_seldon_headers_and_seldon_message_bodies():
    j = joiner()
    common = {"Ce-Specversion": "1.0", "Ce-Id": "p-1", "Ce-Requestid": "p-1", "Ce-Modelid": "classifier",
              "Ce-Namespace": "seldon", "Ce-Endpoint": "default", "Ce-Source": "http://classifier:9000"}
    decode_http(j, {**common, "Ce-Type": "io.seldon.serving.inference.request"}.items(),
           orjson.dumps({"data": {"names": ["age", "hours"], "ndarray": [[39, 40]]}}))
    (event,) = as_dicts(decode_http(j, {**common, "Ce-Type": "io.seldon.serving.inference.response"}.items(),
                               orjson.dumps({"data": {"names": ["p0", "p1"], "ndarray": [[0.2, 0.8]]}})))
    assert event["model"] == "classifier"
    assert event["features"] == {"age": 39, "hours": 40}
    assert event["prediction"] == 1 and event["score"] == pytest.approx(0.8)


def test_kafka_record_headers_are_read_as_attributes():
    headers = [("ce_type", b"org.kubeflow.serving.inference.request"), ("ce_id", b"1"),
               ("ce_inferenceservicename", b"iris"), ("content-type", b"application/json")]
    assert is_cloudevent(headers)
    assert not is_cloudevent([("trace", b"x")]) and not is_cloudevent(None)
    assert attributes(headers) == {"type": KSERVE_REQUEST, "id": "1", "inferenceservicename": "iris",
                                   "datacontenttype": "application/json"}


def test_unpaired_halves_are_emitted_when_they_expire_and_the_cache_is_bounded():
    now = [1000.0]
    j = joiner(ttl=10, max_pending=3, clock=lambda: now[0])
    for n in range(3):
        decode_http(j, kserve_headers(KSERVE_REQUEST, f"q{n}").items(), orjson.dumps({"instances": [[n]]}))
    assert len(j) == 3
    # a fourth pushes the oldest out: emitted as features without a prediction
    out = as_dicts(decode_http(j, kserve_headers(KSERVE_REQUEST, "q3").items(), orjson.dumps({"instances": [[3]]})))
    assert [(e["id"], e["features"], e.get("prediction")) for e in out] == [("q0", {"f0": 0}, None)]
    now[0] += 11
    expired = as_dicts(j.expire()[None])
    assert sorted(e["id"] for e in expired) == ["q1", "q2", "q3"] and len(j) == 0


SPEC = {"ce-specversion": "1.0", "ce-source": "/sender"}  # required attributes the cases below do not vary


@pytest.mark.parametrize("headers, body, reason", [
    ({"ce-type": "dev.knative.sources.ping", "ce-id": "1", "ce-inferenceservicename": "m"}, b"{}", "unknown_kind"),
    ({"ce-type": KSERVE_REQUEST, "ce-inferenceservicename": "m"}, b"{}", "missing_field"),
    ({"ce-type": KSERVE_REQUEST, "ce-id": "1", "ce-inferenceservicename": "m"}, b"nope", "invalid_json"),
    ({"ce-type": KSERVE_REQUEST, "ce-id": "1", "ce-inferenceservicename": "m"}, b"[1]", "not_an_object"),
    ({"ce-type": KSERVE_REQUEST, "ce-id": "1"}, b'{"instances": [[1]]}', "invalid_model"),
    ({"ce-type": KSERVE_REQUEST, "ce-id": "1", "ce-inferenceservicename": "m"}, b'{"foo": 1}', "missing_field"),
])
def test_unusable_cloudevents_are_rejected_with_a_reason(headers, body, reason):
    decoded = decode_http(joiner(), {**SPEC, **headers}.items(), body)
    assert decoded.accepted == 0 and [r.reason for r in decoded.rejected] == [reason]


def test_http_sink_counts_predictions_latency_and_rejections(live_server):
    server = live_server()
    request = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [[5.1, 3.5, 1.4, 0.2]]}]}
    response = {"model_name": "sklearn-iris", "model_version": "v1",
                "outputs": [{"name": "output-0", "shape": [1], "datatype": "INT64", "data": [0]}]}
    for n in range(5):
        first = server.client.post("/v1/cloudevents", content=orjson.dumps(request),
                                   headers=kserve_headers(KSERVE_REQUEST, f"id-{n}", time="2026-11-28T08:00:00Z"))
        assert first.status_code == 202 and first.json()["accepted"] == 0
        second = server.client.post("/v1/cloudevents", content=orjson.dumps(response),
                                    headers=kserve_headers(KSERVE_RESPONSE, f"id-{n}", time="2026-11-28T08:00:00.010Z"))
        assert second.status_code == 202 and second.json()["accepted"] == 1
    bad = server.client.post("/v1/cloudevents", content=b"{}",
                             headers={"ce-type": "something.else", "ce-id": "1", "ce-source": "/x",
                                      "ce-specversion": "1.0"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["reason"] == "unknown_kind"
    assert server.metric("driftline_events_total", model="sklearn-iris", kind="prediction") == 5
    assert server.metric("driftline_prediction_latency_seconds_count", model="sklearn-iris", model_version="v1") == 5
    assert server.metric("driftline_prediction_latency_seconds_sum", model="sklearn-iris",
                         model_version="v1") == pytest.approx(0.05, rel=1e-3)
    assert server.metric("driftline_events_rejected_total", reason="unknown_kind") == 1
    # Structured mode: the whole event in one JSON document.
    structured = {"specversion": "1.0", "id": "s-1", "type": KSERVE_REQUEST, "source": "/v1/models/iris:predict",
                  "datacontenttype": "application/json", "data": {"instances": [[1, 2]]}}
    reply = server.client.post("/v1/cloudevents", content=orjson.dumps(structured),
                               headers={"content-type": "application/cloudevents+json"})
    assert reply.status_code == 202 and reply.json()["pending"] == 1


def test_http_sink_requires_the_ingest_token_when_set(live_server):
    server = live_server(environ={"DRIFTLINE_INGEST_TOKEN": "secret"})
    headers = kserve_headers(KSERVE_REQUEST, "1")
    assert server.client.post("/v1/cloudevents", content=b'{"instances": [[1]]}', headers=headers).status_code == 401
    ok = server.client.post("/v1/cloudevents", content=b'{"instances": [[1]]}',
                            headers={**headers, "authorization": "Bearer secret"})
    assert ok.status_code == 202


# -- CloudEvents as the official SDK writes them ------------------------------------------------

def sdk_event(ce_type: str, ce_id: str, data, isvc: str = "sklearn-iris", **extra):
    from cloudevents.core.v1.event import CloudEvent

    attributes = {"type": ce_type, "source": "http://localhost:9081/", "id": ce_id, "inferenceservicename": isvc,
                  "datacontenttype": "application/json", **extra}
    return CloudEvent(attributes=attributes, data=data)


def sdk_http(event, structured: bool) -> tuple[dict, bytes]:
    from cloudevents.core.bindings import http
    from cloudevents.core.formats.json import JSONFormat

    message = (http.to_structured if structured else http.to_binary)(event, JSONFormat())
    return message.headers, message.body


def test_sdk_events_over_http_binary_and_structured_join_on_the_decoded_id(live_server):
    """The SDK percent-encodes binary-mode header values and writes bytes data as data_base64
    in structured mode; the pair joins, and the prediction's id is the decoded ce-id."""
    server = live_server()
    ids = ["req 1/é", "req%2"]  # encoded by the SDK as req%201/%C3%A9 and req%252
    for n, ce_id in enumerate(ids):
        request = sdk_event(KSERVE_REQUEST, ce_id, {"instances": [[5.1, 3.5, 1.4, 0.2]]},
                            time=datetime(2026, 11, 28, 8, 0, 0, tzinfo=UTC))
        response = sdk_event(KSERVE_RESPONSE, ce_id, orjson.dumps({"predictions": [1], "model_version": "v1"}),
                             time=datetime(2026, 11, 28, 8, 0, 0, 20_000, tzinfo=UTC))
        # binary request + structured response, then the other way round
        first, second = (request, response) if n == 0 else (response, request)
        headers, body = sdk_http(first, structured=False)
        assert "%" in headers["ce-id"]
        reply = server.client.post("/v1/cloudevents", content=body, headers=headers)
        assert reply.status_code == 202 and reply.json()["pending"] == 1, reply.text
        headers, body = sdk_http(second, structured=True)
        assert headers["content-type"].startswith("application/cloudevents+json")
        reply = server.client.post("/v1/cloudevents", content=body, headers=headers)
        assert reply.status_code == 202 and reply.json()["accepted"] == 1, reply.text
    labels = [{"kind": "label", "model": "sklearn-iris", "id": ce_id, "label": 1} for ce_id in ids]
    assert server.client.post("/v1/events", json=labels).status_code == 202
    assert server.metric("driftline_labels_total", model="sklearn-iris", outcome="matched") == 2
    assert server.metric("driftline_prediction_latency_seconds_count", model="sklearn-iris", model_version="v1") == 2
    assert server.metric("driftline_prediction_latency_seconds_sum", model="sklearn-iris",
                         model_version="v1") == pytest.approx(0.04, rel=1e-3)


@pytest.mark.parametrize("missing", ["id", "source", "type", "specversion"])
def test_a_cloudevent_without_a_required_attribute_is_a_counted_rejection(live_server, missing):
    server = live_server()
    headers, body = sdk_http(sdk_event(KSERVE_REQUEST, "a", {"instances": [[1, 2]]}), structured=False)
    del headers[f"ce-{missing}"]
    reply = server.client.post("/v1/cloudevents", content=body, headers=headers)
    assert reply.status_code == 400
    assert reply.json()["errors"][0] == {"index": 0, "reason": "missing_field",
                                         "detail": f"the CloudEvent has no {missing} attribute"}
    # structured mode: the same attribute left out of the document
    document = orjson.loads(sdk_http(sdk_event(KSERVE_REQUEST, "b", {"instances": [[1, 2]]}), structured=True)[1])
    del document[missing]
    reply = server.client.post("/v1/cloudevents", content=orjson.dumps(document),
                               headers={"content-type": "application/cloudevents+json"})
    assert reply.status_code == 400 and reply.json()["errors"][0]["reason"] == "missing_field"
    assert server.metric("driftline_events_rejected_total", reason="missing_field") == 2
    assert server.metric("driftline_cloudevents_pending", source="http") == 0


def _deep_list(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


def _deep_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


ODD_BODIES = {
    "object 300 deep in a feature": b'{"instances": [{"a": ' + _deep_object(300) + b"}]}",
    "list 300 deep in a feature": b'{"instances": [{"a": ' + _deep_list(300) + b"}]}",
    "list 1000 deep in instances": b'{"instances": [' + _deep_list(1000) + b"]}",
    "V2 shape not a list": b'{"inputs": [{"name": "a", "shape": 5, "data": [1, 2]}]}',
    "V2 empty row": b'{"inputs": [{"name": "a", "data": [[]]}]}',
    "Seldon names not a list": b'{"data": {"names": 5, "ndarray": [[1]]}}',
    "V1 columns of scalars": b'{"inputs": {"a": 1, "b": "x"}}',
    "V2 tensor named by an object": b'{"inputs": [{"name": {"x": 1}, "data": [1]}]}',
}


@pytest.mark.parametrize("body", list(ODD_BODIES.values()), ids=list(ODD_BODIES))
def test_deep_or_odd_request_bodies_are_a_4xx_never_a_500(live_server, body):
    server = live_server()
    headers = kserve_headers(KSERVE_REQUEST, "odd")
    reply = server.client.post("/v1/cloudevents", content=body, headers=headers)
    assert reply.status_code in (202, 400), reply.text
    if reply.status_code == 400:
        reason = reply.json()["errors"][0]["reason"]
        assert server.metric("driftline_events_rejected_total", reason=reason) == 1
    # and the same document as a structured-mode event
    document = b'{"specversion": "1.0", "id": "s", "source": "/s", "type": "%s", "inferenceservicename": "m", ' \
               b'"data": %s}' % (KSERVE_REQUEST.encode(), body)
    reply = server.client.post("/v1/cloudevents", content=document,
                               headers={"content-type": "application/cloudevents+json"})
    assert reply.status_code in (202, 400), reply.text


def test_a_shape_claiming_a_hundred_million_rows_gives_the_rows_there_are():
    j = joiner()
    request = {"inputs": [{"name": "a", "shape": [100_000_000, 1], "datatype": "FP32", "data": [1.0, 2.0]}]}
    decode_http(j, kserve_headers(KSERVE_REQUEST, "big").items(), orjson.dumps(request))
    events = as_dicts(decode_http(j, kserve_headers(KSERVE_RESPONSE, "big").items(), b'{"predictions": [0, 1]}'))
    assert [e["features"] for e in events] == [{"a": 1.0}, {"a": 2.0}]


@pytest.mark.parametrize("structured", [
    {"specversion": "1.0", "id": "1", "source": "/s", "type": KSERVE_REQUEST, "inferenceservicename": "m",
     "data_base64": "not base64!"},
    {"specversion": "1.0", "id": "1", "source": "/s", "type": KSERVE_REQUEST, "inferenceservicename": {"a": 1}},
    {"specversion": "2.0", "id": "1", "source": "/s", "type": KSERVE_REQUEST, "data": {"instances": [[1]]}},
    [{"specversion": "1.0"}],
])
def test_odd_structured_documents_are_rejected_with_a_reason(live_server, structured):
    server = live_server()
    reply = server.client.post("/v1/cloudevents", content=orjson.dumps(structured),
                               headers={"content-type": "application/cloudevents+json"})
    assert reply.status_code == 400 and reply.json()["errors"][0]["reason"] in (
        "invalid_value", "invalid_type", "not_an_object")


def test_random_shapes_in_every_body_never_raise():
    """Bodies are model-specific JSON read best effort: whatever the shape, a result or a rejection."""
    import random

    rng = random.Random(7)
    keys = ["name", "shape", "data", "names", "ndarray", "tensor", "values", "prediction", "x"]

    def build(depth=0):
        choice = rng.randrange(8 if depth < 4 else 5)
        if choice == 5:
            return [build(depth + 1) for _ in range(rng.randrange(4))]
        if choice == 6:
            return {rng.choice(keys): build(depth + 1) for _ in range(rng.randrange(4))}
        if choice == 7:
            return [[build(depth + 1) for _ in range(rng.randrange(3))] for _ in range(rng.randrange(3))]
        return [rng.randrange(-3, 4), -1.5, "x", None, True][choice]

    j = joiner(max_pending=10_000)
    for n in range(3000):
        key = rng.choice(["instances", "inputs", "data", "predictions", "outputs"])
        body = {key: build()}
        if key in ("inputs", "outputs") and rng.random() < 0.5:
            body[key] = [{"name": "t", "shape": build(), "data": build()}]
        kind = KSERVE_REQUEST if key in ("instances", "inputs") or rng.random() < 0.5 else KSERVE_RESPONSE
        decoded = decode_http(j, kserve_headers(kind, f"r{n % 50}").items(), orjson.dumps(body))
        assert all(r.reason for r in decoded.rejected)


def test_pending_halves_are_bounded_by_bytes_and_kept_compact():
    """Ten request halves of 7 MB hold about their own bytes (their parsed rows would take 500 MB),
    and no more than max_pending_bytes; the evictions are counted."""
    import gc

    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096

    row = [1 / 3 + j for j in range(1000)]  # 18 to 20 characters a value
    body = orjson.dumps({"instances": [row] * 385})
    assert 6.5e6 < len(body) < 7.5e6
    j = CloudEventJoiner(Validator(max_features=1000), ttl=30, max_pending_bytes=32 * 1024 * 1024,
                         clock=lambda: 1000.0)
    gc.collect()
    before = rss()
    for n in range(10):
        own_body = bytes(bytearray(body))  # each request brings its own bytes
        decoded = decode_http(j, kserve_headers(KSERVE_REQUEST, f"big-{n}").items(), own_body)
        assert not decoded.rejected
    gc.collect()
    grown = rss() - before
    assert len(j) == 4 and j.pending_bytes <= 32 * 1024 * 1024
    assert j.evicted == {"expired": 0, "count": 0, "bytes": 6}
    assert grown < 150e6, f"RSS grew {grown / 1e6:.0f} MB for {j.pending_bytes / 1e6:.0f} MB of pending bodies"


def test_http_sink_expires_pending_halves_on_a_timer(live_server):
    server = live_server({"cloudevents": {"ttl": "0.5s"}})
    reply = server.client.post("/v1/cloudevents", content=b'{"instances": [[1, 2]]}',
                               headers=kserve_headers(KSERVE_REQUEST, "lonely"))
    assert reply.status_code == 202 and reply.json()["pending"] == 1
    deadline = time.monotonic() + 10
    while server.metric("driftline_events_total", model="sklearn-iris", kind="prediction") != 1:
        assert time.monotonic() < deadline, "the request half was not emitted on its own"
        time.sleep(0.1)
    assert server.metric("driftline_cloudevents_pending", source="http") == 0
    assert server.metric("driftline_cloudevents_evicted_total", source="http", reason="expired") == 1


def test_a_request_survives_sigkill_and_joins_its_response_after_the_restart(tmp_path):
    """driftline (python -m service.cli serve) is killed with SIGKILL between a request and its
    response; the restarted service joins them: features, prediction and latency in one event."""
    from tests.kafka.conftest import Replica, wait_for

    first = Replica({}, tmp_path, "sink")
    try:
        wait_for(first.ready, 30, message="driftline ready")
        reply = first.client.post("/v1/cloudevents", content=b'{"instances": [[5.1, 3.5]]}',
                                  headers=kserve_headers(KSERVE_REQUEST, "k1", time="2026-11-28T08:00:00Z"))
        assert reply.status_code == 202 and reply.json()["pending"] == 1
    finally:
        first.kill()
        first.stop()
    second = Replica({}, tmp_path, "sink")  # same name: same state_dir
    try:
        wait_for(second.ready, 30, message="driftline ready again")
        reply = second.client.post("/v1/cloudevents", content=b'{"predictions": [1], "model_version": "v1"}',
                                   headers=kserve_headers(KSERVE_RESPONSE, "k1", time="2026-11-28T08:00:00.030Z"))
        assert reply.status_code == 202 and reply.json()["accepted"] == 1, reply.text
        samples = second.metrics()
        assert samples[("driftline_prediction_latency_seconds_count",
                        frozenset({"model": "sklearn-iris", "model_version": "v1"}.items()))] == 1
    finally:
        second.stop()


def test_exported_halves_restore_elsewhere_and_those_over_the_bounds_are_emitted_alone():
    """What the Kafka changelog carries between replicas: the halves of one partition."""
    source = joiner()
    for n in range(3):
        decode_http(source, kserve_headers(KSERVE_REQUEST, f"e{n}").items(), orjson.dumps({"instances": [[n]]}))
    data = source.export(None)
    assert source.export(7) is None
    target = joiner(max_pending=10)
    target.max_pending = 2  # a replica configured for fewer halves
    assert target.restore(data, origin=4) == 3 and len(target) == 3
    (alone,) = as_dicts(target.expire()[4])
    assert alone["id"] == "e0" and alone["features"] == {"f0": 0}
    (event,) = as_dicts(decode_http(target, kserve_headers(KSERVE_RESPONSE, "e2").items(), b'{"predictions": [1]}'))
    assert event["features"] == {"f0": 2} and event["prediction"] == 1
    target.drop(4)
    assert len(target) == 0


def test_a_restored_half_over_a_lowered_byte_bound_is_emitted_once_not_after_every_restart(tmp_path):
    request = orjson.dumps({"instances": [[float(i)] * 8 for i in range(2000)]})  # ~100 KB
    first = CloudEventJoiner(Validator(), max_pending_bytes=1 << 20, clock=lambda: 1000.0,
                             journal=PendingJournal(tmp_path / "pending.db"))
    decode_http(first, kserve_headers(KSERVE_REQUEST, "big").items(), request)
    assert len(first) == 1
    first.journal.close()
    emitted = []
    for _ in range(3):  # restarts with a smaller bound
        joiner_ = CloudEventJoiner(Validator(), max_pending_bytes=64 * 1024, clock=lambda: 1000.0,
                                   journal=PendingJournal(tmp_path / "pending.db"))
        emitted.append(sum(len(as_dicts(d)) for d in joiner_.expire().values()))
        joiner_.journal.close()
    assert emitted == [2000, 0, 0]


def test_a_damaged_journal_is_moved_aside_and_the_sink_starts(live_server, tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "cloudevents-pending.sqlite").write_bytes(b"this is not a database" * 100)
    server = live_server(state_dir=state_dir)
    assert server.client.get("/readyz").status_code == 200
    assert [p.name for p in state_dir.glob("cloudevents-pending.sqlite.corrupt-*")]
    accepted = server.client.post("/v1/cloudevents", headers=kserve_headers(KSERVE_REQUEST, "r1"),
                                  content=orjson.dumps({"instances": [[1.0, 2.0]]}))
    assert accepted.status_code == 202


def test_open_journal_moves_a_damaged_file_aside_and_says_why_one_cannot_be_opened(tmp_path):
    damaged = tmp_path / "pending.sqlite"
    damaged.write_bytes(b"this is not a database" * 100)
    journal, error = open_journal(damaged)
    assert journal is not None and error is None and journal.halves() == []
    journal.close()
    assert len(list(tmp_path.glob("pending.sqlite.corrupt-*"))) == 1
    journal, error = open_journal(tmp_path / "no-such-dir" / "pending.sqlite")  # as a full disk: no file
    assert journal is None and "unable to open" in error


def test_the_kafka_path_and_the_cloudevents_adapter_import_no_web_framework():
    """The Kafka source and the CloudEvents adapter it shares with the HTTP sink run without
    FastAPI; only the sink's route (service.http) needs it."""
    code = ("import sys, service.kafka.source, service.ingest.sink, service.runtime; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette', 'uvicorn', 'httpx'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_events_of_no_half_at_all_are_a_value_error():
    from service.ingest.joiner import _events

    with pytest.raises(ValueError, match="needs the request half, the response half or both"):
        _events(None, None, None, None)
