"""The engine's throughput with performance estimation (CBPE) on, as a ratio to the same run
with it off.

The events of ``http_ingest.py`` (10 models x 20 features, NDJSON batches of 1,000), fed to
two engines batch by batch in turn, so that a shared machine's drifting speed touches both
alike; time is the process's CPU time, which other processes on a shared machine do not
inflate as they do wall time. Both engines get the same labelled 5,000-row reference per model (features,
``prediction``, ``score``, ``label``); one has ``estimation`` (roc_auc, accuracy, f1,
precision, recall, specificity; reference chunks of 1,000 rows), the other none. Two
configurations: windows of 10,000 evaluated every 1,000, and windows of 1,000 evaluated every
100 (the default window: ten times the evaluations). Each pair runs ``--repeats`` times.

    python benchmarks/estimation_overhead.py [--events 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.http_ingest import BATCH, CATEGORICAL, MODELS, NUMERIC, make_batches
from service.config import Settings
from service.core.engine import Engine

METRICS = ["roc_auc", "accuracy", "f1", "precision", "recall", "specificity"]
REFERENCE_ROWS = 5000


def reference(seed: int = 1) -> pd.DataFrame:
    """Rows like the events' (make_batches), with labels drawn from the scores."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(0, 1, (REFERENCE_ROWS, NUMERIC)).round(6)
    frame = pd.DataFrame({f"num_{j}": numeric[:, j] for j in range(NUMERIC)})
    categories = np.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta"])
    for j in range(CATEGORICAL):
        frame[f"cat_{j}"] = rng.choice(categories, REFERENCE_ROWS)
    score = np.abs(numeric[:, 2]) / 3
    frame["prediction"] = (numeric[:, 1] > 0).astype(int)
    frame["score"] = score
    frame["label"] = (rng.uniform(size=REFERENCE_ROWS) < np.minimum(score, 1)).astype(int)
    return frame


def engine(window: int, step: int, estimation: bool, frame: pd.DataFrame) -> Engine:
    model = {"reference": {"path": "unused"}, "window": {"size": window, "step": step}}
    if estimation:
        model["estimation"] = {"metrics": METRICS, "chunk": 1000}
    built = Engine(Settings.model_validate({"models": {"default": model}, "log_level": "warning"}))
    for index in range(MODELS):
        built.set_reference(f"model-{index}", frame, "benchmark")
    return built


def interleaved(batches: list[bytes], window: int, step: int, frame: pd.DataFrame) -> tuple[float, float]:
    """CPU seconds of the engine with estimation on and with it off, batch by batch in turn."""
    on, off = engine(window, step, True, frame), engine(window, step, False, frame)
    seconds = {True: 0.0, False: 0.0}
    for index, body in enumerate(batches):
        for estimation in ((True, False) if index % 2 else (False, True)):
            target = on if estimation else off
            started = time.process_time()
            target.process(target.validator.decode_body(body))
            seconds[estimation] += time.process_time() - started
    assert all(state.estimate is not None for state in on.models.values())
    assert all(state.estimate is None for state in off.models.values())
    return seconds[True], seconds[False]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    batches = make_batches(args.events)
    frame = reference()
    total = len(batches) * BATCH
    print(f"{total:,} events; engine events per CPU second with estimation on and off, and on/off")
    for label, window, step in (("window 10,000, step 1,000", 10_000, 1000),
                                ("window 1,000, step 100", 1000, 100)):
        for repeat in range(args.repeats):
            on_s, off_s = interleaved(batches, window, step, frame)
            print(f"{label:<28} run {repeat + 1}   on {total / on_s:>8,.0f}   off {total / off_s:>8,.0f}   "
                  f"ratio {off_s / on_s:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
