"""Data quality in the service: exact ratios from known streams on every decoding path, the
metrics, GET /v1/models/{model}/quality, and the data_quality trigger reason."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from service.config import Settings
from service.core.engine import Engine
from tests.test_triggers import count, post, triggers_of

SETTINGS = Settings.model_validate({"models": {"default": {"reference": {"first_n": 100},
                                                           "window": {"size": 100, "step": 100}}}})


def reference_events():
    """x: 0..99 with every 10th null (missing 0.1, range [1, 99]); c: a, b, c; d: always 1."""
    return [{"kind": "prediction", "model": "m", "prediction": 1,
             "features": {"x": None if i % 10 == 0 else float(i), "c": "abc"[i % 3], "d": 1}} for i in range(100)]


def window_events(extra: bool):
    """x: 20 null, 20 strings (the wrong type), 20 out of range, 40 in range; c: 10 null, 20
    values the reference never had, 70 seen; d absent; ``extra``, a feature the reference lacks."""
    events = []
    for i in range(100):
        x = [None, "oops", 150.0, 50.0, 7][i % 5]
        c = None if i % 10 == 0 else "zz" if i % 10 in (1, 2) else "b"
        features = {"x": x, "c": c}
        if extra:
            features["extra"] = i
        events.append({"kind": "prediction", "model": "m", "prediction": 1, "features": features})
    return events


def feed(engine: Engine, events: list[dict], batch_size: int, path: str) -> None:
    for start in range(0, len(events), batch_size):
        batch = events[start:start + batch_size]
        if path == "native":
            decoded = engine.validator.decode_lines([orjson.dumps(e) for e in batch], received_at=0.0)
        else:  # a JSON array: decoded in Python (dict rows, then the learned struct)
            decoded = engine.validator.decode_body(orjson.dumps(batch), received_at=0.0)
        assert not decoded.rejected
        engine.process(decoded)


@pytest.mark.parametrize("path", ["native", "python"])
@pytest.mark.parametrize("batch_size", [1, 37, 100])
def test_exact_ratios_however_the_events_come(path, batch_size):
    engine = Engine(SETTINGS)
    if path == "native":
        assert engine.validator.native is not None
    feed(engine, reference_events(), batch_size, path)
    feed(engine, window_events(extra=True), batch_size, path)
    state = engine.models["m"]
    report = state.quality.to_dict()
    assert report["samples"] == 100
    assert report["features"]["x"] == {"type": "numerical", "missing": 0.4, "reference_missing": 0.1,
                                       "out_of_range": 20 / 60, "unseen": None}
    assert report["features"]["c"] == {"type": "categorical", "missing": 0.1, "reference_missing": 0.0,
                                       "out_of_range": None, "unseen": 20 / 90}
    assert report["features"]["d"]["missing"] == 1.0
    assert report["new_features"] == ["extra"] and report["absent_features"] == ["d"]
    # A window later, "extra" has left with the rows that carried it.
    feed(engine, window_events(extra=False), batch_size, path)
    assert state.quality.new == [] and state.quality.features["x"].missing == 0.4


def test_new_features_survive_a_checkpoint_and_quality_can_be_off():
    engine = Engine(SETTINGS)
    feed(engine, reference_events(), 100, "native")
    feed(engine, window_events(extra=True), 50, "native")
    restored = Engine(SETTINGS)
    restored.restore("m", engine.snapshot("m"))
    assert restored.models["m"].quality.to_dict() == engine.models["m"].quality.to_dict()
    off = Engine(Settings.model_validate({"models": {"default": {"reference": {"first_n": 100},
                                                                 "window": {"size": 100, "step": 100},
                                                                 "quality": {"enabled": False}}}}))
    feed(off, reference_events(), 100, "native")
    feed(off, window_events(extra=True), 100, "native")
    assert off.models["m"].quality is None and off.models["m"].report is not None


def test_a_reference_file_s_columns_left_out_of_drift_are_not_new():
    engine = Engine(Settings.model_validate({"models": {"default": {
        "reference": {"path": "unused.csv"}, "window": {"size": 100, "step": 100},
        "drift": {"features": ["x", "c"]}}}}))
    import pandas as pd

    frame = pd.DataFrame([e["features"] for e in reference_events()])
    engine.set_reference("m", frame, "upload")
    events = window_events(extra=False)
    for event in events:
        event["features"]["d"] = 1
    feed(engine, events, 100, "native")
    assert engine.models["m"].quality.new == [] and list(engine.models["m"].quality.features) == ["x", "c"]


def normal_events(n, start, seed, null_share=0.0):
    rng = np.random.default_rng(seed)
    events = []
    for i in range(n):
        a = float(rng.normal())
        events.append({"kind": "prediction", "model": "m", "id": f"m-{start + i}", "prediction": 1,
                       "features": {"a": None if rng.random() < null_share else a, "b": float(rng.normal())}})
    return events


def test_a_feature_turning_40_percent_null_fires_data_quality_not_data_drift(live_server):
    config = {"models": {"m": {"reference": {"first_n": 500}, "window": {"size": 500, "step": 500},
                               "triggers": {"on": ["data_drift", "data_quality"], "consecutive_windows": 2},
                               "quality": {"missing_increase": 0.1}}}}
    server = live_server(config)
    assert server.client.get("/v1/models/m/quality").status_code == 404
    post(server, normal_events(500, 0, seed=0))
    assert server.client.get("/v1/models/m/quality").status_code == 409  # no window yet
    post(server, normal_events(500, 500, seed=1))  # a clean window: no breach
    body = server.client.get("/v1/models/m/quality").json()
    assert body["breaches"] == [] and body["features"]["a"]["missing"] == 0.0
    assert body["thresholds"] == {"missing_increase": 0.1, "out_of_range": 0.05, "unseen": 0.05}
    post(server, normal_events(500, 1000, seed=2, null_share=0.4))
    assert triggers_of(server) == []  # one window in a row so far
    post(server, normal_events(500, 1500, seed=3, null_share=0.4))
    [trigger] = triggers_of(server)
    assert trigger["reason"] == "data_quality"
    evidence = trigger["payload"]["evidence"]
    assert evidence["dataset_drift"] is False and evidence["quality_breaches"] == 1
    [breach] = evidence["quality"]
    assert breach["feature"] == "a" and breach["check"] == "missing_increase" and 0.35 < breach["value"] < 0.45
    assert count(server, "m", "data_quality") == 1 and count(server, "m", "data_drift") == 0
    missing = server.metric("driftline_feature_missing_ratio", model="m", feature="a")
    assert missing == breach["value"]
    assert server.metric("driftline_feature_reference_missing_ratio", model="m", feature="a") == 0.0
    assert server.metric("driftline_feature_missing_ratio", model="m", feature="b") == 0.0
    assert server.metric("driftline_features_unexpected", model="m", kind="new") == 0
    assert server.metric("driftline_features_unexpected", model="m", kind="absent") == 0
    body = server.client.get("/v1/models/m/quality").json()
    assert body["breaches"] == [breach] and body["reference"] == {"source": "first_n:500", "rows": 500}


def test_metrics_of_a_known_stream(live_server):
    server = live_server({"models": {"default": {"reference": {"first_n": 100}, "window": {"size": 100, "step": 100}}}})
    post(server, reference_events())
    post(server, window_events(extra=True))
    assert server.metric("driftline_feature_missing_ratio", model="m", feature="x") == 0.4
    assert server.metric("driftline_feature_reference_missing_ratio", model="m", feature="x") == 0.1
    assert server.metric("driftline_feature_out_of_range_ratio", model="m", feature="x") == pytest.approx(1 / 3)
    assert server.metric("driftline_feature_unseen_ratio", model="m", feature="c") == pytest.approx(2 / 9)
    assert server.metric("driftline_feature_out_of_range_ratio", model="m", feature="c") is None
    assert server.metric("driftline_feature_unseen_ratio", model="m", feature="x") is None
    assert server.metric("driftline_features_unexpected", model="m", kind="new") == 1
    assert server.metric("driftline_features_unexpected", model="m", kind="absent") == 1
