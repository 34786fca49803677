"""The engine's throughput with 2 segment features of 10 values each, as a ratio to the same run
without segments (data quality on in both).

The events of ``http_ingest.py`` (10 models x 20 features, NDJSON batches of 1,000) with two
more categorical features, ``region`` and ``tier``, of 10 values each, and after each batch
of predictions the labels of the batch before it (so that performance per segment is
computed too). Two engines take the same batches in turn, one with ``segments: [region,
tier]`` and one without, so that a shared machine's drifting speed touches both alike; the
run is repeated and each repeat's ratio printed, with their median. Two configurations:
windows of 10,000 evaluated every 1,000 against a 5,000-row reference, and the default one
(windows of 1,000 evaluated every 100 against the first 1,000 predictions).

    python benchmarks/segments_overhead.py [--events 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.http_ingest import BATCH, CATEGORICAL, MODELS, NUMERIC, config
from service.config import Settings
from service.core.engine import Engine

SEGMENT_VALUES = 10


def make_batches(total: int, seed: int = 0) -> list[bytes]:
    """Batches of BATCH predictions, each followed by the labels of the batch before."""
    rng = np.random.default_rng(seed)
    categories = np.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta"])
    batches, previous_labels = [], []
    for b in range(total // BATCH):
        numeric = rng.normal(0, 1, (BATCH, NUMERIC)).round(6)
        categorical = rng.choice(categories, (BATCH, CATEGORICAL))
        segments = rng.integers(0, SEGMENT_VALUES, (BATCH, 2))
        lines, labels = [], []
        for i in range(BATCH):
            n = b * BATCH + i
            features = {f"num_{j}": float(numeric[i, j]) for j in range(NUMERIC)}
            features.update({f"cat_{j}": str(categorical[i, j]) for j in range(CATEGORICAL)})
            features.update({"region": f"region-{segments[i, 0]}", "tier": f"tier-{segments[i, 1]}"})
            model = f"model-{n % MODELS}"
            lines.append(orjson.dumps({
                "kind": "prediction", "model": model, "model_version": "1", "id": f"req-{n}",
                "timestamp": 1_800_000_000 + n / 1000, "latency_ms": float(numeric[i, 0] ** 2 * 10),
                "features": features, "prediction": int(numeric[i, 1] > 0), "score": float(abs(numeric[i, 2]) / 3)}))
            labels.append(orjson.dumps({"kind": "label", "model": model, "id": f"req-{n}",
                                        "label": int(numeric[i, 1] + rng.normal(0, 0.5) > 0)}))
        batches.append(b"\n".join(lines + previous_labels))
        previous_labels = labels
    return batches


def engine(reference_rows: int | None, segments: bool) -> Engine:
    settings = config(reference_rows)
    default = settings.setdefault("models", {}).setdefault("default", {})
    default["quality"] = {"enabled": True}
    if segments:
        default["segments"] = ["region", "tier"]
    return Engine(Settings.model_validate(settings))


def interleaved(batches: list[bytes], reference_rows: int | None) -> tuple[float, float]:
    """Seconds of the engine with segments and without, batch by batch in turn."""
    on, off = engine(reference_rows, True), engine(reference_rows, False)
    seconds = {True: 0.0, False: 0.0}
    for index, body in enumerate(batches):
        for segments in ((True, False) if index % 2 else (False, True)):
            target = on if segments else off
            started = time.perf_counter()
            target.process(target.validator.decode_body(body))
            seconds[segments] += time.perf_counter() - started
    for state in on.models.values():
        assert state.segments is not None and len(state.segments.drift["region"]) == SEGMENT_VALUES
        assert len(state.segments.performance["tier"]) == SEGMENT_VALUES
    assert all(state.segments is None for state in off.models.values())
    return seconds[True], seconds[False]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="predictions (as many labels follow)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    batches = make_batches(args.events)
    total = len(batches) * BATCH
    print(f"{total:,} predictions and their labels; engine predictions/s with 2 segment features of "
          f"{SEGMENT_VALUES} values and without (data quality on), and with/without")
    for label, rows in (("window 10,000, step 1,000, 5,000-row reference", 5000),
                        ("default configuration (window 1,000, step 100)", None)):
        ratios = []
        for repeat in range(args.repeats):
            on_s, off_s = interleaved(batches, rows)
            ratios.append(off_s / on_s)
            print(f"{label:<50} #{repeat + 1}  with {total / on_s:>8,.0f}   without {total / off_s:>8,.0f}   "
                  f"ratio {off_s / on_s:.3f}")
        print(f"{label:<50} median ratio {statistics.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
