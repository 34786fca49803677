"""The label join through the engine: which predictions wait for their label, for how long,
and how many; each bound of `labels` is checked at its edge."""

import orjson
import pytest

from service.config import Settings
from service.core.engine import Engine

T0 = 1_800_000_000.0


def engine_with(**labels) -> Engine:
    return Engine(Settings.model_validate({"models": {"default": {"reference": {"first_n": 10_000},
                                                                  "labels": labels}}}))


def feed(engine: Engine, events: list[dict]) -> None:
    engine.process(engine.validator.decode_lines([orjson.dumps(e) for e in events], received_at=T0))


def predict(engine: Engine, ids: list[str], at: float = T0) -> None:
    feed(engine, [{"kind": "prediction", "model": "m", "id": i, "timestamp": at, "features": {"x": 1.0},
                   "prediction": 1} for i in ids])


def label(engine: Engine, ids: list[str], at: float) -> dict[str, int]:
    """Send labels for ``ids`` at time ``at``; returns how many of them were matched, unmatched, duplicate."""
    before = {o: engine.labels_total[("m", o)] for o in ("matched", "unmatched", "duplicate")}
    feed(engine, [{"kind": "label", "model": "m", "id": i, "label": 1, "timestamp": at} for i in ids])
    return {o: engine.labels_total[("m", o)] - before[o] for o in before}


def test_a_full_store_evicts_the_oldest_predictions_and_keeps_max_pending():
    engine = engine_with(max_pending=100)
    predict(engine, [f"p{i}" for i in range(60)])
    predict(engine, [f"p{i}" for i in range(60, 150)])  # 150 waiting for a store of 100
    assert len(engine.models["m"].pending) == 100
    assert label(engine, [f"p{i}" for i in range(50)], T0 + 1) == {"matched": 0, "unmatched": 50, "duplicate": 0}
    assert label(engine, [f"p{i}" for i in range(50, 150)], T0 + 1) == \
        {"matched": 100, "unmatched": 0, "duplicate": 0}
    assert len(engine.models["m"].pending) == 0


def test_a_single_batch_over_max_pending_keeps_its_newest_predictions():
    engine = engine_with(max_pending=100)
    predict(engine, [f"p{i}" for i in range(250)])
    assert label(engine, ["p149", "p150", "p249"], T0 + 1) == {"matched": 2, "unmatched": 1, "duplicate": 0}


@pytest.mark.parametrize("ttl, seconds", [("1h", 3600.0), ("90s", 90.0), (600, 600.0)])
def test_labels_join_within_ttl_seconds_of_their_prediction_and_not_after(ttl, seconds):
    engine = engine_with(ttl=ttl)
    predict(engine, ["early"], at=T0)
    predict(engine, ["late"], at=T0 + 1)
    # At T0 + ttl the prediction made at T0 is exactly ttl old: still waiting.
    assert label(engine, ["early"], T0 + seconds) == {"matched": 1, "unmatched": 0, "duplicate": 0}
    # The one made at T0 + 1 is older than ttl two seconds later: expired, its label unmatched.
    assert label(engine, ["late"], T0 + 1 + seconds + 1) == {"matched": 0, "unmatched": 1, "duplicate": 0}


def test_a_label_for_an_already_joined_prediction_is_a_duplicate():
    engine = engine_with()
    predict(engine, ["a", "b"])
    assert label(engine, ["a"], T0 + 5) == {"matched": 1, "unmatched": 0, "duplicate": 0}
    assert label(engine, ["a", "b", "c"], T0 + 6) == {"matched": 1, "unmatched": 1, "duplicate": 1}


def test_the_last_max_pending_matched_ids_are_remembered_as_duplicates_and_no_more():
    engine = engine_with(max_pending=100)
    predict(engine, [f"p{i}" for i in range(100)])
    predict(engine, [f"p{i}" for i in range(100, 150)], at=T0 + 1)
    assert label(engine, [f"p{i}" for i in range(100)], T0 + 2)["matched"] == 50  # p0..p49 were evicted
    assert label(engine, [f"p{i}" for i in range(100, 150)], T0 + 2)["matched"] == 50
    # The 100 matched ids p50..p149 are remembered: their labels again are duplicates.
    assert label(engine, [f"p{i}" for i in range(50, 150)], T0 + 3) == \
        {"matched": 0, "unmatched": 0, "duplicate": 100}
    predict(engine, [f"p{i}" for i in range(150, 200)], at=T0 + 4)
    assert label(engine, [f"p{i}" for i in range(150, 200)], T0 + 5)["matched"] == 50
    # 100 remembered at most: p100..p199; p50..p99 are forgotten, not kept forever.
    assert label(engine, ["p99", "p100"], T0 + 6) == {"matched": 0, "unmatched": 1, "duplicate": 1}


def test_ddm_sees_the_error_rate_rise_when_predictions_turn_wrong_and_not_when_they_turn_right():
    """DDM watches the error rate of joined labels and detects only a rise."""
    counts = {}
    for model_turns, before, after in (("worse", 1, 0), ("better", 0, 1)):
        engine = engine_with()
        predict(engine, [f"p{i}" for i in range(1200)])
        for start, truth in ((0, before), (600, after)):
            feed(engine, [{"kind": "label", "model": "m", "id": f"p{i}", "label": truth, "timestamp": T0 + 1}
                          for i in range(start, start + 600)])
        counts[model_turns] = engine.models["m"].concept_counts["ddm"]
    assert counts["worse"] >= 1 and counts["better"] == 0
