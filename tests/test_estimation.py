"""Estimated performance in the service (models.<m>.estimation): the window's estimate is
detectors.cbpe's on the same rows, survives a checkpoint, is refused a reference it cannot be
fitted on; a score shift without labels fires estimated_performance_drop; realised and
estimated figures side by side on /metrics and GET /v1/models/{model}/estimated."""

from __future__ import annotations

import io

import numpy as np
import orjson
import pandas as pd
import pytest

from detectors.cbpe import CBPE
from service.config import ConfigError, Settings, load_settings
from service.core.engine import Engine
from tests.test_triggers import count, post, triggers_of

WINDOW = 500


def reference_frame(rows: int = 4000, seed: int = 0, positive="yes", negative="no") -> pd.DataFrame:
    """Scores that are over-confident (labels drawn with probability score ** 2): CBPE calibrates."""
    rng = np.random.default_rng(seed)
    score = rng.beta(2, 2, size=rows)
    return pd.DataFrame({"x": rng.normal(size=rows), "score": score,
                         "prediction": np.where(score >= 0.5, positive, negative),
                         "label": np.where(rng.uniform(size=rows) < score ** 2, positive, negative)})


def model_config(**estimation) -> dict:
    return {"reference": {"path": "unused.csv"}, "window": {"size": WINDOW, "step": WINDOW},
            "labels": {"positive_class": "yes"},
            "estimation": {"metrics": ["roc_auc", "accuracy", "precision", "f1"], **estimation}}


def events(scores: np.ndarray, start: int = 0, model: str = "m", version: str = "7") -> list[dict]:
    return [{"kind": "prediction", "model": model, "model_version": version, "id": f"{model}-{start + i}",
             "score": float(score), "prediction": "yes" if score >= 0.5 else "no", "features": {"x": 0.1}}
            for i, score in enumerate(scores)]


def feed(engine: Engine, batch: list[dict], native: bool) -> list:
    if native:
        decoded = engine.validator.decode_lines([orjson.dumps(event) for event in batch], received_at=0.0)
    else:
        decoded = engine.validator.decode_body(orjson.dumps(batch), received_at=0.0)
    assert not decoded.rejected
    return engine.process(decoded)


@pytest.mark.parametrize("native", [True, False])
def test_the_window_s_estimate_is_detectors_cbpe_s_on_the_same_rows(native):
    settings = Settings.model_validate({"models": {"m": model_config(chunk=800)}})
    engine = Engine(settings)
    reference = reference_frame()
    engine.set_reference("m", reference, "upload")
    rng = np.random.default_rng(5)
    scores = rng.uniform(0.2, 0.8, size=700)
    scores[::50] = np.nan  # no score sent: left out of the estimate, as CBPE leaves it out
    batch = events(scores)
    for event in batch[::50]:
        del event["score"]
    evaluations = feed(engine, batch[:333], native) + feed(engine, batch[333:], native)
    [evaluation] = evaluations
    window = slice(0, WINDOW)
    expected = CBPE(["roc_auc", "accuracy", "precision", "f1"], chunk_size=800).fit(
        (reference.label == "yes").astype(int), reference.score, (reference.prediction == "yes").astype(int))
    assert expected.calibrated
    reference_estimate = expected.estimate_chunk(scores[window], (scores[window] >= 0.5).astype(float))
    assert evaluation.estimated.metrics == reference_estimate
    assert evaluation.estimated.model_version == "7" and evaluation.estimated.samples == WINDOW
    assert engine.models["m"].estimator.cbpe.thresholds == expected.thresholds


def test_a_checkpoint_keeps_the_estimator_unless_its_configuration_changed():
    settings = Settings.model_validate({"models": {"m": model_config()}})
    engine = Engine(settings)
    engine.set_reference("m", reference_frame(), "upload")
    feed(engine, events(np.random.default_rng(1).uniform(size=WINDOW)), native=True)
    restored = Engine(settings)
    restored.restore("m", engine.snapshot("m"))
    assert restored.models["m"].estimate == engine.models["m"].estimate is not None
    changed = Engine(Settings.model_validate({"models": {"m": model_config(metrics=["accuracy"])}}))
    changed.restore("m", engine.snapshot("m"))
    assert changed.models["m"].estimator is None and changed.models["m"].estimate is None
    # One fitted before the reference's last, smaller chunk was left out of the thresholds
    # (its key without the chunking) is not kept either: its thresholds may be (0, 1).
    with np.load(io.BytesIO(engine.snapshot("m")), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    marker = rb', {\"incomplete\": \"drop\"}]'
    assert arrays["estimator"].tobytes().count(marker) == 1
    arrays["estimator"] = np.frombuffer(arrays["estimator"].tobytes().replace(marker, b"]"), dtype=np.uint8)
    snapshot = io.BytesIO()
    np.savez(snapshot, **arrays)
    older = Engine(settings)
    older.restore("m", snapshot.getvalue())
    assert older.models["m"].estimator is None and older.models["m"].reference is not None


def test_references_it_cannot_be_fitted_on_are_refused_with_the_reason():
    engine = Engine(Settings.model_validate({"models": {"m": model_config()}}))
    with pytest.raises(ValueError, match="missing: label"):
        engine.set_reference("m", reference_frame().drop(columns="label"), "upload")
    three = reference_frame()
    three.loc[::3, "label"] = "maybe"
    with pytest.raises(ValueError, match="missing: score_maybe, score_no, score_yes"):
        engine.set_reference("m", three, "upload")
    with pytest.raises(ValueError, match="labels.positive_class 'yes' is not among the reference labels"):
        engine.set_reference("m", reference_frame(positive="ja", negative="nein"), "upload")
    with pytest.raises(ValueError, match="at least two reference chunks of 500"):
        engine.set_reference("m", reference_frame(rows=400), "upload")
    # A last, smaller chunk does not count: 501 rows are one chunk of 500 and a remainder.
    with pytest.raises(ValueError, match=r"at least two reference chunks of 500 labelled rows .*complete ones "
                                         r".*the reference has 501"):
        engine.set_reference("m", reference_frame(rows=WINDOW + 1), "upload")
    assert engine.models["m"].reference is None
    # Rows without a label are left out of the fit, not refused.
    partial = reference_frame()
    partial.loc[:999, "label"] = None
    engine.set_reference("m", partial, "upload")
    assert engine.models["m"].estimator.reference_rows == 3000


def test_the_reference_s_incomplete_last_chunk_is_left_out_of_the_thresholds():
    # Kept, a one-row remainder's accuracy (0 or 1) would widen the thresholds to (0, 1) and
    # estimated_performance_drop could never fire.
    settings = Settings.model_validate({"models": {"m": model_config()}})
    complete, with_remainder = Engine(settings), Engine(settings)
    reference = reference_frame(rows=2 * WINDOW + 1)
    complete.set_reference("m", reference.iloc[:2 * WINDOW], "upload")
    with_remainder.set_reference("m", reference, "upload")
    thresholds = with_remainder.models["m"].estimator.cbpe.thresholds
    assert thresholds == complete.models["m"].estimator.cbpe.thresholds
    assert 0 < thresholds["accuracy"][0] < thresholds["accuracy"][1] < 1


@pytest.mark.parametrize("estimation, message", [
    ({"metrics": ["accuracy", "mape"]}, "models.m.estimation.metrics.1"),
    ({"metrics": ["accuracy"], "thresholds": {"f1": [0.5, 0.9]}}, "which is not estimated"),
    ({"thresholds": {"accuracy": [0.9, 0.5]}}, "lower 0.9 must be below upper 0.5"),
    ({"method": "dle"}, "models.m.estimation.method"),
    ({"chunk": 0}, "models.m.estimation.chunk"),
])
def test_configuration_errors_name_the_key(tmp_path, estimation, message):
    path = tmp_path / "config.yaml"
    path.write_text(orjson.dumps({"models": {"m": {"estimation": estimation}}}).decode())
    with pytest.raises(ConfigError, match=message):
        load_settings(path, environ={})


def test_a_score_shift_without_labels_fires_estimated_performance_drop(live_server):
    config = {"models": {"m": {**model_config(), "triggers": {"on": ["estimated_performance_drop"],
                                                             "consecutive_windows": 2}}}}
    server = live_server(config)
    assert server.client.get("/v1/models/m/estimated").status_code == 404
    buffer = io.BytesIO()
    reference_frame().to_csv(buffer, index=False)
    response = server.client.put("/v1/models/m/reference", content=buffer.getvalue(),
                                 headers={"content-type": "text/csv", **server.admin_headers})
    assert response.status_code == 200, response.text
    assert server.client.get("/v1/models/m/estimated").status_code == 409  # no window yet
    rng = np.random.default_rng(2)
    post(server, events(rng.beta(2, 2, size=WINDOW)))  # scores as in the reference: no drop
    body = server.client.get("/v1/models/m/estimated").json()
    assert body["model_version"] == "7" and body["calibrated"] is True
    assert not any(figures["drop"] for figures in body["metrics"].values())
    post(server, events(rng.uniform(0.4, 0.6, size=WINDOW), start=WINDOW))  # unsure scores: a drop
    assert triggers_of(server) == []  # one window in a row so far
    post(server, events(rng.uniform(0.4, 0.6, size=WINDOW), start=2 * WINDOW))
    [trigger] = triggers_of(server)
    assert trigger["reason"] == "estimated_performance_drop"
    evidence = trigger["payload"]["evidence"]
    assert "accuracy" in evidence["estimated_drops"] and evidence["labels_in_window"] == 0
    assert evidence["estimated_performance"]["accuracy"]["value"] < evidence["estimated_performance"]["accuracy"][
        "lower_threshold"]
    assert count(server, "m", "estimated_performance_drop") == 1
    body = server.client.get("/v1/models/m/estimated").json()
    accuracy = body["metrics"]["accuracy"]
    assert accuracy["drop"] and accuracy["alert"] and accuracy["realized"] is None
    assert server.metric("driftline_estimated_performance", model="m", model_version="7",
                         metric="accuracy") == accuracy["value"]
    assert server.metric("driftline_estimated_performance_lower", model="m", model_version="7",
                         metric="accuracy") == accuracy["lower_confidence_bound"]
    assert server.metric("driftline_estimated_performance_threshold_lower", model="m", model_version="7",
                         metric="accuracy") == accuracy["lower_threshold"]
    assert server.metric("driftline_model_performance", model="m", model_version="7", metric="accuracy") is None
    # The labels arrive late: realised next to estimated.
    labels = [{"kind": "label", "model": "m", "id": f"m-{i}", "label": "yes" if rng.uniform() < 0.5 else "no"}
              for i in range(2 * WINDOW, 3 * WINDOW)]
    post(server, labels)
    realized = server.metric("driftline_model_performance", model="m", model_version="7", metric="accuracy")
    assert realized is not None and 0.4 < realized < 0.6
    assert server.metric("driftline_estimated_performance", model="m", model_version="7",
                         metric="accuracy") == accuracy["value"]
    body = server.client.get("/v1/models/m/estimated").json()
    assert body["metrics"]["accuracy"]["realized"] == realized and body["labels_in_window"] == WINDOW


def test_estimated_answers_409_while_estimation_is_off_or_has_no_labelled_reference(live_server):
    server = live_server({"models": {"default": {"reference": {"first_n": 100}, "window": {"size": 100, "step": 100}},
                                     "e": {"estimation": {"metrics": ["accuracy"]}}}})
    post(server, events(np.linspace(0, 1, 150)) + events(np.linspace(0, 1, 150), model="e"))
    off = server.client.get("/v1/models/m/estimated")
    assert off.status_code == 409 and "estimation is off" in off.json()["detail"]
    unfitted = server.client.get("/v1/models/e/estimated")
    assert unfitted.status_code == 409 and "first_n:100" in unfitted.json()["detail"]


def test_a_restart_refits_only_an_estimator_fitted_under_another_configuration(live_server, tmp_path):
    path = tmp_path / "reference.csv"
    reference_frame().to_csv(path, index=False)
    state_dir = tmp_path / "state"
    config = {"models": {"m": {**model_config(metrics=["accuracy"]), "reference": {"path": str(path)}}}}
    first = live_server(config, state_dir=state_dir)
    post(first, events(np.random.default_rng(3).uniform(size=WINDOW)))
    estimate = first.client.get("/v1/models/m/estimated").json()
    first.stop()
    path.unlink()  # the checkpoint brings the reference and the fitted estimator
    same = live_server(config, state_dir=state_dir)
    assert same.client.get("/readyz").status_code == 200
    assert same.client.get("/v1/models/m/estimated").json() == estimate
    same.stop()
    config["models"]["m"]["estimation"]["metrics"] = ["accuracy", "f1"]
    changed = live_server(config, state_dir=state_dir)  # the file is read again, and is gone
    ready = changed.client.get("/readyz")
    assert ready.status_code == 503 and "reference of m not loaded" in ready.text
    assert "no estimator" in changed.client.get("/v1/models/m/estimated").json()["detail"]


CLASSES = ["cat", "dog", "fox"]


def multiclass_reference(rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Three classes, scores over-confident (labels drawn from the squared, renormalised scores)."""
    rng = np.random.default_rng(seed)
    scores = rng.dirichlet([1, 1, 1], size=rows)
    truth = scores ** 2 / (scores ** 2).sum(axis=1, keepdims=True)
    frame = pd.DataFrame({f"score_{name}": scores[:, index] for index, name in enumerate(CLASSES)})
    frame["x"] = rng.normal(size=rows)
    frame["prediction"] = np.array(CLASSES)[scores.argmax(axis=1)]
    frame["label"] = [CLASSES[rng.choice(3, p=row)] for row in truth]
    return frame


def multiclass_events(scores: np.ndarray, start: int = 0) -> list[dict]:
    return [{"kind": "prediction", "model": "m", "model_version": "2", "id": f"m-{start + i}",
             "prediction": CLASSES[int(row.argmax())], "features": {"x": 0.1},
             "scores": dict(zip(CLASSES, map(float, row), strict=True))} for i, row in enumerate(scores)]


@pytest.mark.parametrize("native", [True, False])
def test_a_multiclass_window_s_estimate_is_multiclass_cbpe_s_on_the_same_rows(native):
    from detectors.cbpe_multiclass import MulticlassCBPE

    metrics = ["roc_auc", "accuracy", "f1"]
    settings = Settings.model_validate({"models": {"m": {**model_config(metrics=metrics, chunk=600)}}})
    engine = Engine(settings)
    reference = multiclass_reference()
    engine.set_reference("m", reference, "upload")
    state = engine.models["m"]
    assert list(state.features) == ["x"]  # the score columns are the model's, not features
    scores = np.random.default_rng(4).dirichlet([4, 4, 4], size=WINDOW)  # less confident: a drop
    batch = multiclass_events(scores)
    del batch[7]["scores"]["dog"]  # a class's score not sent: the row is left out
    batch[9].pop("scores")
    [evaluation] = feed(engine, batch[:200], native) + feed(engine, batch[200:], native)
    expected = MulticlassCBPE(CLASSES, metrics, chunk_size=600).fit(
        reference.label.tolist(), reference[[f"score_{name}" for name in CLASSES]].to_numpy(),
        reference.prediction.tolist())
    window_scores = scores.copy()
    window_scores[7, 1] = window_scores[9, :] = np.nan
    assert evaluation.estimated.metrics == expected.estimate_chunk(window_scores, [e["prediction"] for e in batch])
    assert evaluation.estimated.drops() and evaluation.estimated.model_version == "2"
    restored = Engine(settings)
    restored.restore("m", engine.snapshot("m"))
    assert restored.models["m"].estimate == engine.models["m"].estimate


def test_multiclass_scores_decode_alike_on_both_decoders_and_bad_ones_are_rejected_with_a_reason():
    """The native decoder gives a batch with a ``scores`` mapping back to the Python one, which
    reads it (and rejects a bad one with the reason any field gets)."""
    from service.core.events import Validator
    from tests.decoding import decode_both

    lines = [orjson.dumps(event) for event in multiclass_events(np.array([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]]))]
    lines.append(b'{"kind": "prediction", "model": "m", "scores": {"cat": "high"}}')
    lines.append(b'{"kind": "prediction", "model": "m", "scores": {"cat": NaN}}')
    lines.append(b'{"kind": "prediction", "model": "m", "scores": [0.5, 0.5]}')
    lines.append(b'{"kind": "prediction", "model": "m", "score": 0.5}')
    decoded = decode_both("decode_body", b"\n".join(lines), 0.0)
    assert Validator().decode_body(b"\n".join(lines[:2]), 0.0).batches == []  # given back (or never given)
    assert Validator().decode_records(lines[:2], 0.0).batches == []
    assert Validator().decode_body(b"\n".join(lines[-1:]), 0.0).batches != []  # no scores: native
    assert [(r.index, r.reason) for r in decoded.rejected] == [(2, "invalid_type"), (3, "non_finite"),
                                                               (4, "invalid_type")]
    [batch] = decoded.prediction_batches()
    assert batch.class_scores == [{"cat": 0.2, "dog": 0.7, "fox": 0.1}, {"cat": 0.5, "dog": 0.25, "fox": 0.25}, None]


def test_rows_older_than_window_max_age_are_left_out_of_the_estimate():
    config = model_config(metrics=["accuracy", "roc_auc"])
    config["window"]["max_age"] = "100s"
    engine = Engine(Settings.model_validate({"models": {"m": config}}))
    reference = reference_frame()
    engine.set_reference("m", reference, "upload")
    scores = np.random.default_rng(6).uniform(size=WINDOW)
    batch = events(scores)
    for i, event in enumerate(batch):
        event["timestamp"] = 1_000.0 if i < 200 else 2_000.0  # the first 200 are too old
    [evaluation] = feed(engine, batch, native=True)
    expected = CBPE(["accuracy", "roc_auc"], chunk_size=WINDOW).fit(
        (reference.label == "yes").astype(int), reference.score, (reference.prediction == "yes").astype(int))
    assert evaluation.estimated.metrics == expected.estimate_chunk(scores[200:], (scores[200:] >= 0.5).astype(float))
    assert evaluation.estimated.samples == WINDOW - 200


def test_multiclass_estimates_over_http(live_server):
    server = live_server({"models": {"m": model_config(metrics=["accuracy", "f1"])}})
    buffer = io.BytesIO()
    multiclass_reference().to_csv(buffer, index=False)
    response = server.client.put("/v1/models/m/reference", content=buffer.getvalue(),
                                 headers={"content-type": "text/csv", **server.admin_headers})
    assert response.status_code == 200 and response.json()["features"] == {"x": "numerical"}
    post(server, multiclass_events(np.random.default_rng(8).dirichlet([1, 1, 1], size=WINDOW)))
    body = server.client.get("/v1/models/m/estimated").json()
    assert body["classes"] == CLASSES and len(body["calibrated"]) == 3 and body["model_version"] == "2"
    accuracy = body["metrics"]["accuracy"]
    assert 0 < accuracy["value"] < 1 and accuracy["realized"] is None
    assert server.metric("driftline_estimated_performance", model="m", model_version="2",
                         metric="accuracy") == accuracy["value"]
