"""A segment's verdicts (service.core.segments) against Evidently 0.7.23's DataDriftPreset run on that
segment's rows alone, reference against current: same methods, same scores, same verdicts."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest
from evidently_oracle import run_evidently
from test_evidently_parity import assert_same_verdicts

from service.config import Settings
from service.core.engine import Engine

NUMERICAL, CATEGORICAL = ["amount", "few"], ["colour", "flag"]


def frame(rows: int, seed: int, shift: float) -> pd.DataFrame:
    """Segment "big" 3/4 of the rows, "small" 1/4; only "small" shifts."""
    rng = np.random.default_rng(seed)
    segment = np.where(rng.random(rows) < 0.75, "big", "small")
    moved = np.where(segment == "small", shift, 0.0)
    return pd.DataFrame({
        "region": segment,
        "amount": rng.normal(moved, 1.0),
        "few": rng.integers(0, 4, rows).astype(np.float64) + (moved > 0),
        "colour": rng.choice(["red", "green", "blue", "grey"], rows, p=[0.4, 0.3, 0.2, 0.1]),
        "flag": np.where(rng.random(rows) < 0.3 + 0.1 * moved, "yes", "no"),
    })


@pytest.mark.parametrize("reference_rows", [1200, 3000])  # "big": about 900 and 2,250 reference rows
@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_each_segment_matches_evidently_on_its_rows_alone(reference_rows, shift):
    engine = Engine(Settings.model_validate({"models": {"m": {
        "reference": {"path": "unused.csv"}, "window": {"size": 1600, "step": 1600}, "segments": ["region"]}}}))
    reference, current = frame(reference_rows, 1, 0.0), frame(1600, 2, shift)
    engine.set_reference("m", reference, "upload")
    events = [{"kind": "prediction", "model": "m", "prediction": 1, "features": row}
              for row in current.to_dict(orient="records")]
    engine.process(engine.validator.decode_body(orjson.dumps(events), received_at=0.0))
    results = engine.models["m"].segments.drift["region"]
    assert set(results) == {"big", "small"}
    for segment, result in results.items():
        ref = reference[reference.region == segment].drop(columns="region")
        cur = current[current.region == segment].drop(columns="region")
        assert result.samples == len(cur)
        theirs = run_evidently(ref, cur, NUMERICAL, CATEGORICAL)
        assert_same_verdicts(result.report, theirs)
    if shift:
        assert results["small"].report.dataset_drift and not results["big"].report.dataset_drift
