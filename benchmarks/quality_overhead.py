"""The engine's throughput with data quality on, as a ratio to the same run with it off.

The events of ``http_ingest.py`` (10 models x 20 features, NDJSON batches of 1,000), fed to
two engines batch by batch in turn, one with ``quality.enabled`` and one without, so that a
shared machine's drifting speed touches both alike. Two configurations: windows of 10,000
evaluated every 1,000 against a 5,000-row reference, and the default one (windows of 1,000
evaluated every 100 against the first 1,000 predictions: ten times the evaluations).

    python benchmarks/quality_overhead.py [--events 100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.http_ingest import BATCH, config, make_batches
from service.config import Settings
from service.core.engine import Engine


def engine(reference_rows: int | None, quality: bool) -> Engine:
    settings = config(reference_rows)
    settings.setdefault("models", {}).setdefault("default", {})["quality"] = {"enabled": quality}
    return Engine(Settings.model_validate(settings))


def interleaved(batches: list[bytes], reference_rows: int | None) -> tuple[float, float]:
    """Seconds of the engine with quality on and with it off, batch by batch in turn.

    The exact KS p-values SciPy computes are cached process-wide, and whichever engine meets
    a window size and statistic first would pay for both: a pass beforehand computes them
    all, so that each engine is timed on its own work."""
    warm = engine(reference_rows, False)
    for body in batches:
        warm.process(warm.validator.decode_body(body))
    on, off = engine(reference_rows, True), engine(reference_rows, False)
    seconds = {True: 0.0, False: 0.0}
    for index, body in enumerate(batches):
        for quality in ((True, False) if index % 2 else (False, True)):
            target = on if quality else off
            started = time.perf_counter()
            target.process(target.validator.decode_body(body))
            seconds[quality] += time.perf_counter() - started
    assert all(state.quality is not None for state in on.models.values())
    assert all(state.quality is None for state in off.models.values())
    return seconds[True], seconds[False]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    batches = make_batches(args.events)
    total = len(batches) * BATCH
    print(f"{total:,} events; engine events/s with data quality on and off, and on/off")
    for label, rows in (("window 10,000, step 1,000, 5,000-row reference", 5000),
                        ("default configuration (window 1,000, step 100)", None)):
        on_s, off_s = interleaved(batches, rows)
        print(f"{label:<50} on {total / on_s:>8,.0f}   off {total / off_s:>8,.0f}   ratio {off_s / on_s:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
