"""The engine without HTTP: batching does not change what it computes."""

import numpy as np
import orjson
import pandas as pd
import pytest

from service.config import Settings
from service.core.engine import Engine
from service.core.model_state import FEATURE, OWN

SETTINGS = Settings.model_validate({"models": {"default": {"reference": {"first_n": 200},
                                                           "window": {"size": 300, "step": 100}}}})


def events(n, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return [orjson.dumps({"kind": "prediction", "model": "m", "id": f"e{i}", "timestamp": 1_800_000_000 + i,
                          "features": {"x": float(rng.normal(shift)), "c": str(rng.choice(["a", "b", "c"]))},
                          "prediction": int(rng.random() < 0.5)}) for i in range(n)]


def feed(batch_size: int) -> tuple[Engine, list]:
    engine = Engine(SETTINGS)
    lines = events(200) + events(1000, shift=0.5, seed=1)
    seen = []
    engine.listeners.append(seen.append)
    for start in range(0, len(lines), batch_size):
        engine.process(engine.validator.decode_lines(lines[start:start + batch_size], received_at=0.0))
    return engine, seen


def test_a_window_is_evaluated_every_step_however_events_are_batched():
    reports = {}
    for batch_size in (1, 37, 100, 1200):
        engine, seen = feed(batch_size)
        state = engine.models["m"]
        assert [e.samples for e in seen] == [100, 200] + [300] * 8, batch_size
        assert state.evaluations == 10
        reports[batch_size] = (state.report.to_dict(), state.prediction_report.to_dict())
    assert all(report == reports[1] for report in reports.values())


def test_checkpoint_round_trip_keeps_window_reference_and_verdicts():
    engine, _ = feed(250)
    state = engine.models["m"]
    restored = Engine(SETTINGS)
    restored.restore("m", engine.snapshot("m"))
    again = restored.models["m"]
    assert again.report.to_dict() == state.report.to_dict()
    assert again.window_samples == 300 and len(again.pending) == len(state.pending) == 1000  # ids e0..e999
    more = events(100, shift=0.5, seed=2)
    engine.process(engine.validator.decode_lines(more, received_at=0.0))
    restored.process(restored.validator.decode_lines(more, received_at=0.0))
    assert again.report.to_dict() == state.report.to_dict()


def test_a_string_in_a_numerical_feature_counts_as_missing_on_both_paths():
    engine = Engine(SETTINGS)
    engine.process(engine.validator.decode_lines(events(200), received_at=0.0))
    state = engine.models["m"]

    def x_after(rows):
        lines = [orjson.dumps({"kind": "prediction", "model": "m", "features": f}) for f in rows]
        engine.process(engine.validator.decode_lines(lines, received_at=0.0))
        return state.window.column(FEATURE + "x")[-len(rows):]

    dense = [{"x": "1.5", "c": "a"}, {"x": True, "c": "a"}, {"x": 2, "c": "a"}, {"x": None, "c": "a"}]
    # Every row has x: the one-matrix path. A row without x: the per-column path.
    np.testing.assert_array_equal(x_after(dense), [np.nan, 1.0, 2.0, np.nan])
    np.testing.assert_array_equal(x_after(dense + [{"c": "a"}]), [np.nan, 1.0, 2.0, np.nan, np.nan])


def test_a_first_n_reference_gathered_over_several_batches_has_each_prediction_once():
    for batch_size in (1, 37, 200):
        engine, _ = feed(batch_size)
        predictions = engine.models["m"].prediction_reference.columns["prediction"]
        assert (int(predictions.counts.sum()), predictions.n_missing) == (200, 0), batch_size


def test_a_string_predicted_by_a_regression_model_counts_as_missing():
    engine = Engine(SETTINGS)
    lines = [orjson.dumps({"kind": "prediction", "model": "r", "features": {"x": i}, "prediction": i + 0.5})
             for i in range(200)]
    engine.process(engine.validator.decode_lines(lines, received_at=0.0))
    odd = [orjson.dumps({"kind": "prediction", "model": "r", "features": {"x": 1}, "prediction": p})
           for p in ("cat", 2.5, True)]
    engine.process(engine.validator.decode_lines(odd, received_at=0.0))
    state = engine.models["r"]
    assert state.task == "regression"
    np.testing.assert_array_equal(state.window.column(OWN + "prediction")[-3:], [np.nan, 2.5, 1.0])


def test_window_max_age_leaves_older_predictions_out_of_the_comparison():
    def run(max_age):
        window = {"size": 100, "step": 50, **({"max_age": max_age} if max_age else {})}
        engine = Engine(Settings.model_validate({"models": {"default": {"reference": {"first_n": 200},
                                                                        "window": window}}}))
        seen = []
        engine.listeners.append(seen.append)
        rng = np.random.default_rng(3)

        def send(n, start, shift):
            lines = [orjson.dumps({"kind": "prediction", "model": "m", "timestamp": start + i,
                                   "features": {"x": float(rng.normal(shift))}, "prediction": 1})
                     for i in range(n)]
            engine.process(engine.validator.decode_lines(lines, received_at=0.0))

        send(200, 1_800_000_000, 0.0)  # the reference
        send(50, 1_800_001_000, 4.0)  # drifted, then an hour later 50 that are not
        send(50, 1_800_004_600, 0.0)
        return seen[-1]

    old_and_new, recent = run(None), run("10m")
    assert (old_and_new.samples, old_and_new.drift.dataset_drift) == (100, True)
    assert (recent.samples, recent.drift.dataset_drift) == (50, False)
    assert (recent.window_start, recent.window_end) == (1_800_004_600, 1_800_004_649)


def test_a_reference_past_max_models_is_refused_by_name():
    import pandas as pd
    import pytest

    from service.core.engine import TooManyModels

    engine = Engine(Settings.model_validate({"limits": {"max_models": 1}}))
    frame = pd.DataFrame({"a": np.arange(50.0)})
    engine.set_reference("m1", frame, "test")
    with pytest.raises(TooManyModels, match="limits.max_models=1 models are tracked already") as refused:
        engine.set_reference("m2", frame, "test")
    assert not isinstance(refused.value, OverflowError) and list(engine.models) == ["m1"]


def test_a_refused_reference_table_leaves_the_model_as_it_was():
    engine = Engine(SETTINGS)
    table = pd.DataFrame({"prediction": [0.5, 1.5, 2.25]})  # a regressor's predictions, and no feature
    with pytest.raises(ValueError, match="no feature columns"):
        engine.set_reference("m", table, "upload")
    assert engine.models["m"].task is None and engine.models["m"].reference is None


def test_windows_counted_against_the_reference_give_the_verdicts_and_quality_of_sorted_windows(monkeypatch):
    """The default configuration's KS columns (features and score) are counted as rows come
    and go (detectors.tabulation); every evaluation, and one after a restore, equals the
    same engine's that sorts its windows instead."""
    import os

    from detectors import tabulation
    from service.core import window
    from tests.conftest import require_tool

    require_tool("the native kernels detectors._kernels", tabulation.WindowTabulation,
                 "pip builds them where Rust's cargo is on the PATH",
                 required=os.environ.get("DRIFTLINE_NATIVE_REQUIRED") == "1")
    rng = np.random.default_rng(3)

    def lines(n, start, shift):
        x = rng.normal(shift, size=n).round(2)
        x[rng.random(n) < 0.05] = np.nan  # missing, and out of the reference's range below
        return [orjson.dumps({"kind": "prediction", "model": "m", "id": f"e{start + i}",
                              "timestamp": 1_800_000_000 + start + i,
                              "features": {"x": None if np.isnan(x[i]) else float(x[i] * (1 + 3 * (i % 50 == 0))),
                                           "few": int(rng.integers(0, 3)), "c": str(rng.choice(["a", "b"]))},
                              "prediction": int(rng.random() < 0.5), "score": float(rng.random() ** (1 + shift))})
                for i in range(n)]

    stream = lines(1000, 0, 0.0) + lines(2500, 1000, 0.4)
    settings = Settings.model_validate({"models": {"default": {"quality": {"enabled": True}}}})

    def run(counted: bool):
        if not counted:
            monkeypatch.setattr(window, "WindowTabulation", None)
        engine, seen = Engine(settings), []
        engine.listeners.append(seen.append)
        for start in range(0, 3000, 250):
            engine.process(engine.validator.decode_lines(stream[start:start + 250], received_at=0.0))
        restored = Engine(settings)
        restored.restore("m", engine.snapshot("m"))
        restored.listeners.append(seen.append)
        for engine_ in (engine, restored):
            engine_.process(engine_.validator.decode_lines(stream[3000:], received_at=0.0))
        monkeypatch.undo()
        state = engine.models["m"]
        tabulated = sorted(name for engine_ in (engine, restored) for name in engine_.models["m"].window.tabulated())
        return [(e.drift.to_dict(), e.prediction_drift, e.quality.to_dict()) for e in seen if e.kind == "window"], \
            tabulated, state

    counted, tabulated, state = run(True)
    sorted_, untabulated, _ = run(False)
    assert tabulated == [FEATURE + "x", FEATURE + "x", OWN + "score", OWN + "score"] and untabulated == []
    assert len(counted) == 20 + 2 * 5
    assert counted == sorted_
    assert state.report.features["x"].method == "ks" and state.report.features["few"].method != "ks"
    assert counted[-1][2]["features"]["x"]["out_of_range"] > 0 and counted[-1][2]["features"]["x"]["missing"] > 0
