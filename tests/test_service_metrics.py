"""A known event sequence through the real HTTP server, and every metric's exact value."""

import shutil
import subprocess

import numpy as np
import orjson
import pandas as pd
import pytest

from service import __version__
from tests.conftest import needs_tool
from tests.detectors.evidently_oracle import run_evidently

CONFIG = {"models": {"default": {"reference": {"first_n": 100}, "window": {"size": 100, "step": 50},
                                 "labels": {"window": 100}}}}
LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]


def ndjson(events):
    return b"\n".join(orjson.dumps(e) for e in events)


def predictions(rng, start, n, shift=0.0, version="1"):
    x = rng.normal(shift, 1.0, n)
    colours = rng.choice(["red", "green", "blue"], n, p=[0.6, 0.3, 0.1] if shift else [0.2, 0.3, 0.5])
    latency = rng.gamma(2.0, 20.0, n)
    events = [{"kind": "prediction", "model": "m", "model_version": version, "id": f"p{start + i}",
               "timestamp": 1_800_000_000 + start + i, "latency_ms": float(latency[i]),
               "status": "error" if i % 40 == 0 else "ok",
               "features": {"x": float(x[i]), "colour": str(colours[i])},
               "prediction": int(x[i] > 0), "score": float(1 / (1 + np.exp(-x[i])))} for i in range(n)]
    return events, {"x": x, "colour": colours, "latency": latency / 1000}


def post(server, events):
    response = server.client.post("/v1/events", content=ndjson(events))
    assert response.status_code == 202, response.text
    return response.json()


def evidently_verdicts(reference, current):
    """Evidently 0.7.23 on the same values as data frames: the features, and the predicted class."""
    features = run_evidently(pd.DataFrame({"x": reference["x"], "colour": reference["colour"]}),
                             pd.DataFrame({"x": current["x"], "colour": current["colour"]}))
    predictions = run_evidently(pd.DataFrame({"prediction": (reference["x"] > 0).astype(int)}),
                                pd.DataFrame({"prediction": (current["x"] > 0).astype(int)}))
    return features, predictions.columns["prediction"]


def test_known_sequence_gives_exact_metrics_and_drift_turns_on_and_off(live_server):
    server = live_server(CONFIG)
    rng = np.random.default_rng(42)
    reference_events, reference = predictions(rng, 0, 100)
    assert post(server, reference_events) == {"accepted": 100, "rejected": 0, "errors": []}
    assert server.metric("driftline_events_total", model="m", kind="prediction") == 100
    assert server.metric("driftline_prediction_errors_total", model="m", model_version="1") == 3
    assert server.metric("driftline_window_samples", model="m") == 0
    assert server.metric("driftline_dataset_drift_detected", model="m") is None

    latencies = [reference["latency"]]
    for step, shift in enumerate([0.0, 3.0, 0.0]):
        events, current = predictions(rng, 100 * (step + 1), 100, shift=shift)
        latencies.append(current["latency"])
        post(server, events)
        theirs, prediction = evidently_verdicts(reference, current)
        drifted = 1.0 if shift else 0.0
        assert theirs.dataset_drift == bool(drifted)
        assert server.metric("driftline_dataset_drift_detected", model="m") == drifted
        assert server.metric("driftline_drift_share", model="m") == theirs.share
        assert {name: column.method for name, column in theirs.columns.items()} == {"x": "ks", "colour": "chisquare"}
        for feature, expected in theirs.columns.items():
            assert server.metric("driftline_feature_drift_score", model="m", feature=feature,
                                 method=expected.method) == pytest.approx(expected.score, rel=1e-6, abs=0)
            assert server.metric("driftline_feature_drift_detected", model="m", feature=feature) == \
                float(expected.drift)
        assert server.metric("driftline_window_samples", model="m") == 100
        # Prediction drift: the predicted class follows sign(x), so it drifts in the shifted window only.
        assert prediction.method == "z" and prediction.drift == bool(shift)
        assert server.metric("driftline_prediction_drift_score", model="m", method="z") == \
            pytest.approx(prediction.score, rel=1e-6, abs=0)

    everything = np.concatenate(latencies)
    for bound in LATENCY_BUCKETS:
        assert server.metric("driftline_prediction_latency_seconds_bucket", model="m", model_version="1",
                             le=repr(bound)) == np.sum(everything <= bound)
    assert server.metric("driftline_prediction_latency_seconds_count", model="m", model_version="1") == 400
    assert server.metric("driftline_prediction_latency_seconds_sum", model="m", model_version="1") == \
        pytest.approx(everything.sum(), rel=1e-12)
    assert server.metric("driftline_events_total", model="m", kind="prediction") == 400
    assert server.metric("driftline_prediction_errors_total", model="m", model_version="1") == 12


def test_labels_join_count_and_give_exact_performance(live_server):
    server = live_server(CONFIG)
    rng = np.random.default_rng(1)
    events, data = predictions(rng, 0, 150)
    post(server, events)
    predicted = (data["x"] > 0).astype(int)
    truth = np.where(rng.random(150) < 0.8, predicted, 1 - predicted)
    labels = [{"kind": "label", "model": "m", "id": f"p{i}", "label": int(truth[i]),
               "timestamp": 1_800_000_000 + i + 120} for i in range(100, 150)]
    unknown = [{"kind": "label", "model": "m", "id": f"nope{i}", "label": 1} for i in range(5)]
    post(server, labels + unknown + labels[:3])

    assert server.metric("driftline_labels_total", model="m", outcome="matched") == 50
    assert server.metric("driftline_labels_total", model="m", outcome="unmatched") == 5
    assert server.metric("driftline_labels_total", model="m", outcome="duplicate") == 3
    correct = int(np.sum(truth[100:150] == predicted[100:150]))
    assert server.metric("driftline_label_correct_total", model="m", model_version="1") == correct
    assert server.metric("driftline_model_performance", model="m", model_version="1", metric="accuracy") == \
        pytest.approx(correct / 50, rel=1e-12)
    positives = truth[100:150] == 1
    hits = (predicted[100:150] == 1) & positives
    assert server.metric("driftline_model_performance", model="m", model_version="1", metric="recall") == \
        pytest.approx(hits.sum() / positives.sum(), rel=1e-12)
    # Every label came 120 s after its prediction.
    assert server.metric("driftline_label_delay_seconds_count", model="m") == 50
    assert server.metric("driftline_label_delay_seconds_bucket", model="m", le="60.0") == 0
    assert server.metric("driftline_label_delay_seconds_bucket", model="m", le="300.0") == 50
    assert server.metric("driftline_concept_drift_total", model="m", detector="adwin") == 0


def test_infra_events_and_rejections_are_counted(live_server):
    server = live_server(CONFIG)
    infra = [{"kind": "infra", "model": "m", "instance": "pod-a", "cpu_utilization": 0.25, "memory_bytes": 1e9},
             {"kind": "infra", "model": "m", "instance": "pod-a", "cpu_utilization": 0.5, "event": "restart"},
             {"kind": "infra", "model": "m", "instance": "pod-b", "gpu_utilization": 0.9, "requests_in_flight": 4,
              "gpu_memory_bytes": 2.1e10, "event": "oom_killed"},
             {"kind": "infra", "model": "m", "instance": "pod-b", "event": "restart"}]
    body = ndjson(infra) + b'\n{"kind": "infra", "model": "m", "cpu_utilization": NaN}\n{broken\n[1]'
    response = server.client.post("/v1/events", content=body)
    assert response.status_code == 202
    assert response.json()["accepted"] == 4 and response.json()["rejected"] == 3
    assert server.metric("driftline_infra_cpu_utilization_ratio", model="m", server="pod-a") == 0.5
    assert server.metric("driftline_infra_memory_bytes", model="m", server="pod-a") == 1e9
    assert server.metric("driftline_infra_gpu_utilization_ratio", model="m", server="pod-b") == 0.9
    assert server.metric("driftline_infra_gpu_memory_bytes", model="m", server="pod-b") == 2.1e10
    assert server.metric("driftline_infra_requests_in_flight", model="m", server="pod-b") == 4
    assert server.metric("driftline_infra_events_total", model="m", event="restart") == 2
    assert server.metric("driftline_infra_events_total", model="m", event="oom_killed") == 1
    assert server.metric("driftline_events_total", model="m", kind="infra") == 4
    assert server.metric("driftline_events_rejected_total", reason="non_finite") == 1
    assert server.metric("driftline_events_rejected_total", reason="invalid_json") == 1
    assert server.metric("driftline_events_rejected_total", reason="not_an_object") == 1
    assert server.metric("driftline_build_info", version=__version__) == 1


def test_infra_gauges_name_the_model_server_in_label_server(live_server):
    """The event's `instance` is exported as `server`: Prometheus owns the label `instance`
    (the scrape target) and would rename driftline's to `exported_instance`."""
    server = live_server(CONFIG)
    post(server, [{"kind": "infra", "model": "m", "instance": "pod-a", "cpu_utilization": 0.25,
                   "memory_bytes": 1e9, "gpu_utilization": 0.5, "gpu_memory_bytes": 1e10,
                   "requests_in_flight": 2}])
    infra = {(name, labels) for name, labels in server.metrics() if name.startswith("driftline_infra_")
             and name != "driftline_infra_events_total"}
    assert len(infra) == 5
    assert {labels for _, labels in infra} == {frozenset({("model", "m"), ("server", "pod-a")})}


def test_model_servers_beyond_the_bound_fold_into_other(live_server):
    server = live_server({**CONFIG, "limits": {"max_instances": 2}})
    post(server, [{"kind": "infra", "model": "m", "instance": f"pod-{i}", "cpu_utilization": i / 10}
                  for i in range(4)])
    assert server.metric("driftline_infra_cpu_utilization_ratio", model="m", server="pod-0") == 0.0
    assert server.metric("driftline_infra_cpu_utilization_ratio", model="m", server="pod-1") == 0.1
    # pod-2 and pod-3 share __other__: the last value written wins
    assert server.metric("driftline_infra_cpu_utilization_ratio", model="m", server="__other__") == 0.3
    assert server.metric("driftline_label_values_overflow_total", label="server") == 2


@needs_tool("promtool", shutil.which("promtool"), "Debian package prometheus")
def test_promtool_finds_no_problem_in_the_exposition(live_server):
    server = live_server(CONFIG)
    rng = np.random.default_rng(3)
    for step in range(3):
        post(server, predictions(rng, 100 * step, 100, shift=step)[0])
    post(server, [{"kind": "label", "model": "m", "id": f"p{i}", "label": 1} for i in range(100, 200)]
         + [{"kind": "infra", "model": "m", "instance": "a", "cpu_utilization": 0.1, "event": "deploy"}])
    exposition = server.client.get("/metrics").text
    checked = subprocess.run(["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == ""


def test_a_figure_undefined_on_the_labels_is_absent_not_zero(live_server):
    server = live_server(CONFIG)
    rng = np.random.default_rng(2)
    events, data = predictions(rng, 0, 150)
    post(server, events)
    predicted = (data["x"] > 0).astype(int)
    # Every label negative: recall (and so F1) of the positive class is undefined, precision is 0.
    post(server, [{"kind": "label", "model": "m", "id": f"p{i}", "label": 0} for i in range(100, 150)])
    assert predicted[100:150].any()
    [summary] = server.client.get("/v1/models").json()
    figures = summary["performance"]["1"]
    assert "recall" not in figures and "f1" not in figures and "roc_auc" not in figures, figures
    assert figures["precision"] == 0.0 and figures["accuracy"] == pytest.approx(1 - predicted[100:150].mean())
    assert server.metric("driftline_model_performance", model="m", model_version="1", metric="recall") is None
    assert server.metric("driftline_model_performance", model="m", model_version="1", metric="precision") == 0.0
