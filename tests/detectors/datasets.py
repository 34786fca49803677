"""Generated reference/current data sets covering every column shape the drift tests meet."""

from __future__ import annotations

import numpy as np
import pandas as pd

NUMERICAL_KINDS = ("continuous", "discrete5", "discrete12", "discrete40", "binary", "constant", "missing", "heavy")
CATEGORICAL_KINDS = ("two", "many", "unseen", "constant", "constant_changed", "missing", "bool")


def _numerical(kind: str, rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    if kind == "continuous":
        return rng.normal(shift, 1.0, n)
    if kind == "discrete5":
        return rng.integers(0, 5, n).astype(float) + (rng.random(n) < shift / 2)
    if kind == "discrete12":
        return np.minimum(rng.poisson(4 + 3 * shift, n), 11).astype(float)
    if kind == "discrete40":
        return rng.integers(0, 40, n).astype(float) + np.round(shift * 5)
    if kind == "binary":
        return (rng.random(n) < 0.3 + shift / 3).astype(float)
    if kind == "constant":
        return np.full(n, 3.0 + shift)
    if kind == "missing":
        values = rng.gamma(2.0 + shift, 1.0, n)
        values[rng.random(n) < 0.15] = np.nan
        return values
    if kind == "heavy":
        return rng.standard_t(2, n) * 10 + shift * 3
    raise ValueError(kind)


def _categorical(kind: str, rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    if kind == "two":
        return np.where(rng.random(n) < 0.4 + shift / 4, "yes", "no").astype(object)
    if kind == "many":
        weights = np.arange(1, 9, dtype=float) ** (1 + shift)
        return np.array([f"c{i}" for i in range(8)], dtype=object)[rng.choice(8, n, p=weights / weights.sum())]
    if kind == "unseen":
        labels = np.array(["DE", "FR", "US", "GB", "PL"], dtype=object)
        values = labels[rng.integers(0, 3 + (2 if shift else 0), n)]
        return values
    if kind == "constant":
        return np.full(n, "same", dtype=object)
    if kind == "constant_changed":
        return np.full(n, "after" if shift else "before", dtype=object)
    if kind == "missing":
        values = np.array(["a", "b", "c"], dtype=object)[rng.integers(0, 3, n)]
        values[rng.random(n) < 0.2 + shift / 5] = None
        return values
    if kind == "bool":
        return rng.random(n) < 0.5 + shift / 5
    raise ValueError(kind)


def make_pair(n_ref: int, n_cur: int, seed: int, shift: float = 0.6):
    """(reference, current, numerical column names, categorical column names).

    Every kind appears unshifted (``*_same``) and shifted (``*_moved``) in current."""
    rng = np.random.default_rng(seed)
    ref, cur = {}, {}
    numerical, categorical = [], []
    for kind in NUMERICAL_KINDS:
        for suffix, delta in (("same", 0.0), ("moved", shift)):
            name = f"num_{kind}_{suffix}"
            ref[name] = _numerical(kind, rng, n_ref, 0.0)
            cur[name] = _numerical(kind, rng, n_cur, delta)
            numerical.append(name)
    for kind in CATEGORICAL_KINDS:
        for suffix, delta in (("same", 0.0), ("moved", shift)):
            name = f"cat_{kind}_{suffix}"
            ref[name] = _categorical(kind, rng, n_ref, 0.0)
            cur[name] = _categorical(kind, rng, n_cur, delta)
            categorical.append(name)
    return pd.DataFrame(ref), pd.DataFrame(cur), numerical, categorical
