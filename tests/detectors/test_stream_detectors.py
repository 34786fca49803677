"""ADWIN, Page-Hinkley and DDM detections against River's implementations, same streams."""

from __future__ import annotations

import json

import numpy as np
import pytest
from river import drift as river_drift

from detectors import ADWIN, DDM, PageHinkley


def river_detections(detector, values):
    found = []
    for index, value in enumerate(values.tolist()):
        detector.update(value)
        if detector.drift_detected:
            found.append(index)
    return found


def bernoulli_abrupt(rng):
    return np.concatenate([rng.random(3000) < 0.1, rng.random(2000) < 0.35, rng.random(2000) < 0.1]).astype(float)


def bernoulli_gradual(rng):
    return (rng.random(8000) < np.linspace(0.05, 0.5, 8000)).astype(float)


def loss_abrupt(rng):
    return np.concatenate([rng.exponential(1.0, 4000), rng.exponential(2.5, 3000), rng.exponential(0.7, 3000)])


def loss_gradual(rng):
    return np.abs(rng.normal(np.linspace(0.0, 3.0, 9000), 1.0))


BERNOULLI = [bernoulli_abrupt, bernoulli_gradual]
LOSSES = [loss_abrupt, loss_gradual]
SEEDS = range(6)

PAIRS = {
    "adwin": (ADWIN, river_drift.ADWIN, {}),
    "adwin_clock1": (ADWIN, river_drift.ADWIN, {"clock": 1, "delta": 0.01}),
    "adwin_small_buckets": (ADWIN, river_drift.ADWIN, {"max_buckets": 2, "clock": 7}),
    "adwin_no_grace": (ADWIN, river_drift.ADWIN, {"min_window_length": 1, "grace_period": 0}),
    # Checks from the first value on: a window of one value (no split to test) included.
    "adwin_clock1_no_grace": (ADWIN, river_drift.ADWIN, {"clock": 1, "grace_period": 0}),
    "adwin_clock1_no_grace_min1": (ADWIN, river_drift.ADWIN, {"clock": 1, "grace_period": 0, "min_window_length": 1}),
    "page_hinkley": (PageHinkley, river_drift.PageHinkley, {}),
    "page_hinkley_up": (PageHinkley, river_drift.PageHinkley, {"mode": "up", "threshold": 20.0}),
    "page_hinkley_down": (PageHinkley, river_drift.PageHinkley, {"mode": "down", "threshold": 20.0}),
    "ddm": (DDM, river_drift.binary.DDM, {}),
}


CASES = [
    pytest.param(pair, stream, id=f"{pair}-{stream.__name__}")
    for pair in PAIRS
    for stream in BERNOULLI + LOSSES
    if not (pair == "ddm" and stream in LOSSES)  # DDM takes error indicators, not losses
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("pair,stream", CASES)
def test_same_detections_as_river(pair, stream, seed):
    ours_cls, river_cls, params = PAIRS[pair]
    values = stream(np.random.default_rng(seed))
    expected = river_detections(river_cls(**params), values)
    detector = ours_cls(**params)
    assert detector.update_many(values).tolist() == expected
    assert detector.drift_detected == (bool(expected) and expected[-1] == values.size - 1)


def test_long_stable_stream_then_small_change():
    """60,000 values: windows far larger than one vectorised span of ADWIN."""
    rng = np.random.default_rng(9)
    values = np.concatenate([rng.random(40000) < 0.1, rng.random(20000) < 0.13]).astype(float)
    for ours, theirs in ((ADWIN(), river_drift.ADWIN()), (DDM(), river_drift.binary.DDM()),
                         (PageHinkley(), river_drift.PageHinkley())):
        assert ours.update_many(values).tolist() == river_detections(theirs, values)


@pytest.mark.parametrize("cls", [ADWIN, PageHinkley, DDM])
def test_batches_checkpoints_and_single_updates_agree(cls):
    values = bernoulli_abrupt(np.random.default_rng(42))
    whole = cls().update_many(values).tolist()
    assert whole, "the stream should drift"

    detector, found, offset = cls(), [], 0
    for size in [1, 7, 500, 33, 2048, 5000]:
        batch = values[offset : offset + size]
        found += (detector.update_many(batch) + offset).tolist()
        # a checkpoint round trip through JSON between batches changes nothing
        detector = cls.from_state(json.loads(json.dumps(detector.to_state())))
        offset += batch.size
    assert found == whole

    single = cls()
    assert [i for i, value in enumerate(values[:3000]) if single.update(value)] == [i for i in whole if i < 3000]


def test_drift_detected_reports_the_last_value():
    detector = DDM()
    hits = detector.update_many(bernoulli_abrupt(np.random.default_rng(0)))
    assert not detector.drift_detected
    values = bernoulli_abrupt(np.random.default_rng(0))[: hits[0] + 1]
    assert DDM().update_many(values).tolist() == [hits[0]]
    tail = DDM()
    tail.update_many(values)
    assert tail.drift_detected


def test_ddm_rejects_losses():
    with pytest.raises(ValueError, match="error indicators"):
        DDM().update_many(np.array([0.0, 2.5]))


def test_page_hinkley_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        PageHinkley(mode="sideways")


@pytest.mark.parametrize("cls", [ADWIN, PageHinkley, DDM])
def test_empty_batch_changes_nothing(cls):
    detector = cls()
    before = detector.to_state()
    assert detector.update_many(np.array([])).tolist() == []
    assert detector.to_state() == before and not detector.drift_detected
