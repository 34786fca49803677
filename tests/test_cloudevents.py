"""KServe / Seldon inference-logger CloudEvents -> prediction events (service.cloudevents),
over HTTP (POST /v1/cloudevents) with payloads shaped as the loggers send them."""

from __future__ import annotations

import orjson
import pytest

from service.cloudevents import CloudEventJoiner, attributes, decode, is_cloudevent
from service.events import Validator

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
    first = decode(j, kserve_headers(KSERVE_REQUEST, "abc", time="2026-11-28T08:00:00Z").items(),
                   orjson.dumps(request))
    assert first.accepted == 0 and not first.rejected and len(j) == 1
    second = decode(j, kserve_headers(KSERVE_RESPONSE, "abc", time="2026-11-28T08:00:00.040Z").items(),
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
    assert decode(j, kserve_headers(KSERVE_RESPONSE, "r1", isvc="income").items(), orjson.dumps(response)).accepted == 0
    events = as_dicts(decode(j, kserve_headers(KSERVE_REQUEST, "r1", isvc="income").items(), orjson.dumps(request)))
    assert [e["features"] for e in events] == [{"age": 39, "workclass": "Private"}, {"age": 50, "workclass": "State-gov"}]
    assert [e["prediction"] for e in events] == [0, 1]
    assert [e["score"] for e in events] == pytest.approx([0.3, 0.8])
    assert {e["model_version"] for e in events} == {"3"}


def test_v2_single_matrix_input_gives_f_columns_and_probabilities_give_argmax():
    j = joiner()
    request = {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]}
    response = {"model_name": "m", "outputs": [{"name": "output-0", "shape": [1, 2], "datatype": "FP32",
                                                "data": [0.1, 0.9]}]}
    decode(j, kserve_headers(KSERVE_REQUEST, "x", isvc="m").items(), orjson.dumps(request))
    (event,) = as_dicts(decode(j, kserve_headers(KSERVE_RESPONSE, "x", isvc="m").items(), orjson.dumps(response)))
    assert event["id"] == "x"
    assert event["features"] == {"f0": 1.0, "f1": 2.0, "f2": 3.0}
    assert event["prediction"] == 1 and event["score"] == pytest.approx(0.9)


def test_seldon_headers_and_seldon_message_bodies():
    j = joiner()
    common = {"Ce-Id": "p-1", "Ce-Requestid": "p-1", "Ce-Modelid": "classifier", "Ce-Namespace": "seldon",
              "Ce-Endpoint": "default", "Ce-Source": "http://classifier:9000"}
    decode(j, {**common, "Ce-Type": "io.seldon.serving.inference.request"}.items(),
           orjson.dumps({"data": {"names": ["age", "hours"], "ndarray": [[39, 40]]}}))
    (event,) = as_dicts(decode(j, {**common, "Ce-Type": "io.seldon.serving.inference.response"}.items(),
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
        decode(j, kserve_headers(KSERVE_REQUEST, f"q{n}").items(), orjson.dumps({"instances": [[n]]}))
    assert len(j) == 3
    # a fourth pushes the oldest out: emitted as features without a prediction
    out = as_dicts(decode(j, kserve_headers(KSERVE_REQUEST, "q3").items(), orjson.dumps({"instances": [[3]]})))
    assert [(e["id"], e["features"], e.get("prediction")) for e in out] == [("q0", {"f0": 0}, None)]
    now[0] += 11
    expired = as_dicts(j.expire())
    assert sorted(e["id"] for e in expired) == ["q1", "q2", "q3"] and len(j) == 0


@pytest.mark.parametrize("headers, body, reason", [
    ({"ce-type": "dev.knative.sources.ping", "ce-id": "1", "ce-inferenceservicename": "m"}, b"{}", "unknown_kind"),
    ({"ce-type": KSERVE_REQUEST, "ce-inferenceservicename": "m"}, b"{}", "missing_field"),
    ({"ce-type": KSERVE_REQUEST, "ce-id": "1", "ce-inferenceservicename": "m"}, b"nope", "invalid_json"),
    ({"ce-type": KSERVE_REQUEST, "ce-id": "1", "ce-inferenceservicename": "m"}, b"[1]", "not_an_object"),
    ({"ce-type": KSERVE_REQUEST, "ce-id": "1"}, b'{"instances": [[1]]}', "invalid_model"),
    ({"ce-type": KSERVE_REQUEST, "ce-id": "1", "ce-inferenceservicename": "m"}, b'{"foo": 1}', "missing_field"),
])
def test_unusable_cloudevents_are_rejected_with_a_reason(headers, body, reason):
    decoded = decode(joiner(), headers.items(), body)
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
    bad = server.client.post("/v1/cloudevents", content=b"{}", headers={"ce-type": "something.else", "ce-id": "1"})
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
