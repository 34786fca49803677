"""Write checkpoints of two models with the driftline found on PYTHONPATH, to test that later
versions read them. How the committed ones were made (format 1: commit 79e0c47; format 2:
commit faa453c)::

    git worktree add --detach /tmp/old <commit>
    PYTHONPATH=/tmp/old python tests/checkpoint_formats/make_fixtures.py tests/checkpoint_formats/format-<n>
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import orjson

SETTINGS = {"models": {"default": {"reference": {"first_n": 50}, "window": {"size": 60, "step": 20}}}}


def events(model: str, n: int, start: int = 0, shift: float = 0.0, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"kind": "prediction", "model": model, "id": f"{model}-{start + i}", "model_version": "2",
             "timestamp": 1_800_000_000 + start + i,
             "features": {"a": float(rng.normal(shift)), "b": str(rng.choice(["x", "y", "z"]))},
             "prediction": int(rng.random() < 0.5), "score": float(rng.random())} for i in range(n)]


def history() -> bytes:
    """"m": a reference, a window of 60 and labels; "c": 20 of its 50 first-N reference rows."""
    labels = [{"kind": "label", "model": "m", "id": f"m-{i}", "label": i % 2, "timestamp": 1_800_000_200}
              for i in range(60, 100)]
    lines = events("m", 50) + events("m", 60, start=50, shift=1.0, seed=1) + labels + events("c", 20, seed=2)
    return b"\n".join(map(orjson.dumps, lines))


def main(directory: Path) -> None:
    from service.config import Settings
    from service.core.engine import Engine

    engine = Engine(Settings.model_validate(SETTINGS))
    engine.ingest_body(history())
    directory.mkdir(parents=True, exist_ok=True)
    for model in ("m", "c"):
        (directory / f"{model}.state").write_bytes(engine.snapshot(model))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
