"""The HTTP API on a real server: routes, auth, references, bad input, bounds, restarts."""

import io
import os
import signal
import socket
import subprocess
import sys
import time
import tracemalloc

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from tests.conftest import free_socket

SMALL = {"models": {"default": {"reference": {"first_n": 50}, "window": {"size": 60, "step": 20}}}}


def ndjson(events):
    return b"\n".join(orjson.dumps(e) for e in events)


def traffic(model, n, start=0, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return [{"kind": "prediction", "model": model, "id": f"{model}-{start + i}", "model_version": "2",
             "features": {"a": float(rng.normal(shift)), "b": str(rng.choice(["x", "y", "z"]))},
             "prediction": int(rng.random() < 0.5), "score": float(rng.random())} for i in range(n)]


def test_health_readiness_and_openapi(live_server):
    server = live_server()
    assert server.client.get("/healthz").json()["status"] == "ok"
    ready = server.client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "reasons": []}
    paths = server.client.get("/openapi.json").json()["paths"]
    for route in ("/v1/events", "/v1/models", "/v1/models/{model}/drift", "/v1/models/{model}/report",
                  "/v1/models/{model}/reference", "/metrics"):
        assert route in paths
    assert server.client.get("/docs").status_code == 200
    metrics = server.client.get("/metrics", follow_redirects=False)
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")


def test_models_drift_and_report_views(live_server):
    server = live_server(SMALL)
    assert server.client.get("/v1/models/m/drift").status_code == 404
    reference, current = traffic("m", 50), traffic("m", 60, start=50, shift=4.0, seed=1)
    server.client.post("/v1/events", content=ndjson(reference))
    assert server.client.get("/v1/models/m/drift").status_code == 409  # reference ready, no window yet
    server.client.post("/v1/events", content=ndjson(current))
    drift = server.client.get("/v1/models/m/drift").json()
    assert drift["dataset_drift"] is True and drift["features_total"] == 2
    assert set(drift["features"]) == {"a", "b"}
    # Evidently's KS test is scipy's two-sample KS p-value on the raw values.
    p_value = ks_2samp([e["features"]["a"] for e in reference], [e["features"]["a"] for e in current]).pvalue
    assert 0 < p_value < 1e-20
    a = drift["features"]["a"]
    assert a["score"] == pytest.approx(p_value, rel=1e-9)
    assert a | {"score": p_value} == {"type": "numerical", "method": "ks", "score": p_value,
                                      "threshold": 0.05, "drift": True, "missing": 0}
    assert drift["reference"] == {"source": "first_n:50", "rows": 50}
    [summary] = server.client.get("/v1/models").json()
    assert summary["model"] == "m" and summary["window"]["samples"] == 60 and summary["dataset_drift"] is True
    report = server.client.get("/v1/models/m/report")
    assert report.status_code == 200 and "<html" in report.text.lower() and "Drifted" in report.text


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_reference_upload_in_each_format_replaces_the_first_n_reference(live_server, fmt):
    server = live_server(SMALL)
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.normal(4.0, 1.0, 300), "b": rng.choice(["x", "y", "z"], 300),
                          "prediction": rng.integers(0, 2, 300), "label": rng.integers(0, 2, 300)})
    sink = io.BytesIO()
    {"csv": lambda: frame.to_csv(sink, index=False), "parquet": lambda: frame.to_parquet(sink),
     "jsonl": lambda: frame.to_json(sink, orient="records", lines=True)}[fmt]()
    response = server.client.put("/v1/models/m/reference", content=sink.getvalue())
    assert response.status_code == 200, response.text
    assert response.json() == {"model": "m", "rows": 300, "source": "upload",
                               "features": {"a": "numerical", "b": "categorical"}}
    # The reference is centred on 4: traffic centred on 0 drifts, traffic centred on 4 does not.
    server.client.post("/v1/events", content=ndjson(traffic("m", 60, shift=0.0)))
    assert server.client.get("/v1/models/m/drift").json()["features"]["a"]["drift"] is True
    server.client.post("/v1/events", content=ndjson(traffic("m", 60, start=60, shift=4.0, seed=2)))
    assert server.client.get("/v1/models/m/drift").json()["features"]["a"]["drift"] is False


def test_bad_reference_uploads_get_clear_errors(live_server):
    server = live_server()
    assert server.client.put("/v1/models/m/reference", content=b"\x00\x01garbage").status_code == 422
    only_ignored = server.client.put("/v1/models/m/reference", content=b"label,id\n1,a\n")
    assert only_ignored.status_code == 422 and "no feature columns" in only_ignored.json()["detail"]
    assert server.client.put("/v1/models/bad%20name/reference", content=b"a\n1\n").status_code == 422


def test_mutating_routes_need_the_token_and_ingest_its_own(live_server):
    server = live_server(environ={"DRIFTLINE_TOKEN": "admin-secret", "DRIFTLINE_INGEST_TOKEN": "ingest-secret"})
    csv = b"a,b\n1,x\n2,y\n3,x\n"
    assert server.client.put("/v1/models/m/reference", content=csv).status_code == 401
    assert server.client.put("/v1/models/m/reference", content=csv,
                             headers={"authorization": "Bearer ingest-secret"}).status_code == 401
    assert server.client.put("/v1/models/m/reference", content=csv,
                             headers={"authorization": "Bearer admin-secret"}).status_code == 200
    event = ndjson(traffic("m", 1))
    assert server.client.post("/v1/events", content=event).status_code == 401
    assert server.client.post("/v1/events", content=event, headers={"authorization": "Bearer wrong"}).status_code == 401
    assert server.client.post("/v1/events", content=event,
                              headers={"authorization": "Bearer ingest-secret"}).status_code == 202
    # Secrets never reach the metrics.
    assert "secret" not in server.client.get("/metrics").text


def test_bad_input_is_rejected_with_reasons_and_the_service_keeps_serving(live_server):
    server = live_server({"limits": {"max_body_bytes": 4096}})
    bodies = [b"{not json", b'{"kind": "prediction", "model": "m", "latency_ms": NaN}',
              b'{"kind": "prediction", "model": "m", "score": Infinity}', b'{"kind": "weather", "model": "m"}',
              b'{"kind": "prediction", "model": "m", "features": {"a": [1]}}', b'{"kind": "label", "model": "m"}',
              b'{"kind": "prediction"}', b"[]"]
    reasons = []
    for body in bodies:
        response = server.client.post("/v1/events", content=body)
        if body == b"[]":
            assert response.status_code == 202 and response.json() == {"accepted": 0, "rejected": 0, "errors": []}
            continue
        assert response.status_code == 400, body
        [error] = response.json()["errors"]
        assert error["detail"]
        reasons.append(error["reason"])
    assert reasons == ["invalid_json", "non_finite", "non_finite", "unknown_kind", "invalid_type", "missing_field",
                       "invalid_model"]
    oversize = server.client.post("/v1/events", content=b"[" + b" " * 5000 + b"]")
    assert oversize.status_code == 413
    chunked = server.client.post("/v1/events", content=iter([b"[", b" " * 3000, b" " * 3000, b"]"]))
    assert chunked.status_code == 413
    assert server.metric("driftline_events_rejected_total", reason="oversize") == 2
    assert server.metric("driftline_events_rejected_total", reason="non_finite") == 2
    assert server.client.post("/v1/events", content=ndjson(traffic("m", 3))).status_code == 202
    assert server.client.get("/healthz").status_code == 200


def test_ten_thousand_model_names_stay_within_the_label_bounds(live_server):
    server = live_server({"limits": {"max_models": 100}})
    tracemalloc.start()
    try:
        for batch in range(10):
            events = [{"kind": "prediction", "model": f"model-{batch * 1000 + i}", "features": {"a": 1.0},
                       "latency_ms": 5} for i in range(1000)]
            assert server.client.post("/v1/events", content=ndjson(events)).json()["accepted"] == 1000
        grown_first, _ = tracemalloc.get_traced_memory()
        for batch in range(10, 20):
            events = [{"kind": "prediction", "model": f"model-{batch * 1000 + i}", "features": {"a": 1.0},
                       "latency_ms": 5} for i in range(1000)]
            server.client.post("/v1/events", content=ndjson(events))
        grown_second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    metrics = server.metrics()
    models = {dict(labels).get("model") for (_, labels) in metrics} - {None}
    assert len(models) == 101 and "__other__" in models
    assert server.metric("driftline_events_total", model="__other__", kind="prediction") == 20_000 - 100
    assert server.metric("driftline_label_values_overflow_total", label="model") == 20_000 - 100
    assert len(server.runtime.engine.models) == 100
    # The second 10,000 unseen names cost (almost) nothing more than the first: bounded state.
    assert grown_second - grown_first < 2_000_000


def test_model_versions_instances_and_infra_event_kinds_stay_within_their_bounds(live_server):
    server = live_server({"limits": {"max_model_versions": 2, "max_instances": 2, "max_infra_event_kinds": 2}})
    # One event per request: each request is one batch, so every value beyond a bound is one overflow.
    for version in ("1", "2", "3", "1", "4"):
        event = {"kind": "prediction", "model": "m", "model_version": version, "features": {"a": 1.0},
                 "latency_ms": 5}
        assert server.client.post("/v1/events", content=orjson.dumps(event)).json()["accepted"] == 1
    for instance, word in (("pod-a", "restart"), ("pod-b", "oom_killed"), ("pod-c", "deploy"), ("pod-a", "evicted"),
                           ("pod-b", "restart")):
        event = {"kind": "infra", "model": "m", "instance": instance, "cpu_utilization": 0.5, "event": word}
        assert server.client.post("/v1/events", content=orjson.dumps(event)).json()["accepted"] == 1
    metrics = server.metrics()

    def values_of(name, label):
        return {dict(labels)[label]: value for (sample, labels), value in metrics.items()
                if sample == name and dict(labels).get("model") == "m"}

    assert values_of("driftline_prediction_latency_seconds_count", "model_version") == \
        {"1": 2, "2": 1, "__other__": 2}
    # The infra gauges' label for the event's `instance` (whatever the exposition names it).
    [server_label] = {name for (sample, labels) in metrics if sample == "driftline_infra_cpu_utilization_ratio"
                      for name, _ in labels} - {"model"}
    assert set(values_of("driftline_infra_cpu_utilization_ratio", server_label)) == {"pod-a", "pod-b", "__other__"}
    assert values_of("driftline_infra_events_total", "event") == {"restart": 2, "oom_killed": 1, "__other__": 2}
    overflow = {label: server.metric("driftline_label_values_overflow_total", label=label)
                for label in ("model", "model_version", server_label, "event")}
    assert overflow == {"model": 0, "model_version": 2, server_label: 1, "event": 2}


def test_the_body_limit_is_exact_whether_declared_or_streamed(live_server):
    limit = 4096
    server = live_server({"limits": {"max_body_bytes": limit}})
    event = orjson.dumps({"kind": "prediction", "model": "m", "features": {"a": 1.0}})

    def body(size):  # a valid one-event array of exactly `size` bytes
        return b"[" + event + b" " * (size - len(event) - 2) + b"]"

    def chunks(data):  # no Content-Length: httpx sends an iterator chunked
        return iter([data[:1000], data[1000:3000], data[3000:]])

    assert len(body(limit)) == limit
    assert server.client.post("/v1/events", content=body(limit)).status_code == 202
    assert server.client.post("/v1/events", content=chunks(body(limit))).status_code == 202
    assert server.client.post("/v1/events", content=body(limit + 1)).status_code == 413
    assert server.client.post("/v1/events", content=chunks(body(limit + 1))).status_code == 413
    # A declared length over the limit is refused before any of the body is sent.
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % (limit + 1))
        assert conn.recv(4096).startswith(b"HTTP/1.1 413 ")
    assert server.metric("driftline_events_rejected_total", reason="oversize") == 3
    assert server.metric("driftline_events_total", model="m", kind="prediction") == 2


def test_state_survives_a_restart(live_server, tmp_path):
    state_dir = tmp_path / "state"
    first = live_server(SMALL, state_dir=state_dir)
    first.client.post("/v1/events", content=ndjson(traffic("m", 50) + traffic("m", 60, start=50, shift=4.0, seed=1)))
    before = first.client.get("/v1/models/m/drift").json()
    first.stop()

    second = live_server(SMALL, state_dir=state_dir)
    assert second.client.get("/v1/models/m/drift").json() == before
    [summary] = second.client.get("/v1/models").json()
    assert summary["window"]["samples"] == 60 and summary["labels_pending"] == 110
    label = {"kind": "label", "model": "m", "id": "m-70", "label": 1}
    second.client.post("/v1/events", content=orjson.dumps(label))
    assert second.metric("driftline_labels_total", model="m", outcome="matched") == 1


def test_driftline_serve_with_no_config_answers_on_loopback(tmp_path):
    """The README's first command: `driftline serve` with no configuration."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    driftline = os.path.join(os.path.dirname(sys.executable), "driftline")
    process = subprocess.Popen([driftline, "serve", "--port", str(port)], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.HTTPError:
                assert process.poll() is None, process.stdout.read().decode()
                assert time.monotonic() < deadline, "driftline serve did not answer"
                time.sleep(0.2)
        assert response.json()["ready"] is True
        accepted = httpx.post(f"http://127.0.0.1:{port}/v1/events", content=ndjson(traffic("m", 5)))
        assert accepted.status_code == 202
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    # uvicorn shuts down gracefully, then re-raises SIGTERM; the checkpoint written on the way out
    # shows the shutdown ran.
    assert process.returncode in (0, -signal.SIGTERM)
    assert (tmp_path / "driftline-state" / "models" / "m.state").is_file()


def test_a_bad_config_stops_start_up_with_the_key_named(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("kafka: {bootstrap_server: x}\n")
    result = subprocess.run([sys.executable, "-m", "service.cli", "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "kafka.bootstrap_server: unknown key" in result.stderr


def test_model_summary_types_and_latest_version(live_server):
    server = live_server(SMALL)
    server.client.post("/v1/events", content=ndjson(traffic("m", 20)))
    [summary] = server.client.get("/v1/models").json()
    assert summary["reference"]["collecting"] is True and summary["reference"]["collected"] == 20
    assert summary["model_version"] == "2"
    unversioned = [{k: v for k, v in e.items() if k != "model_version"} for e in traffic("m", 1, start=20)]
    server.client.post("/v1/events", content=ndjson(unversioned))
    [summary] = server.client.get("/v1/models").json()
    assert summary["model_version"] == "2"  # an event without a version does not make it "unknown"
    server.client.post("/v1/events", content=ndjson(traffic("m", 40, start=21)))
    [summary] = server.client.get("/v1/models").json()
    assert summary["reference"]["collecting"] is False and summary["reference"]["rows"] == 50


def test_a_reference_for_a_model_past_max_models_is_a_conflict(live_server):
    server = live_server({"limits": {"max_models": 1}})
    assert server.client.put("/v1/models/m1/reference", content=b"a\n1\n2\n3\n").status_code == 200
    refused = server.client.put("/v1/models/m2/reference", content=b"a\n1\n2\n3\n")
    assert refused.status_code == 409 and "limits.max_models=1" in refused.json()["detail"]
