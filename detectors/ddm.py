"""Drift Detection Method (Gama et al., 2004) on a stream of errors, as River's ``drift.binary.DDM``.

Input values are 0 (correct prediction) or 1 (error); fractional values in [0, 1] are
accepted as error probabilities. The error rate ``p`` and its standard deviation
``s = sqrt(p (1 - p) / n)`` are running statistics, so a batch is evaluated with cumulative
sums and running minima; the Python loop runs once per detection.

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> errors = np.concatenate([rng.random(1000) < 0.1, rng.random(1000) < 0.5]).astype(float)
>>> detector = DDM()
>>> detector.update_many(errors).tolist()  # early alarms on few samples are DDM's (and River's)
[39, 263, 1047]
"""

from __future__ import annotations

import numpy as np

from detectors.base import StreamDetector


class DDM(StreamDetector):
    """River's defaults: ``warm_start=30, warning_threshold=2, drift_threshold=3``."""

    def __init__(self, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0):
        self.warm_start = warm_start
        self.warning_threshold = warning_threshold
        self.drift_threshold = drift_threshold
        self.drift_detected = False
        self.warning_detected = False
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._p = 0.0
        self._p_min = 0.0
        self._s_min = 0.0
        self._ps_min = float("inf")
        self.warning_detected = False

    def _check(self, values: np.ndarray) -> np.ndarray:
        if values.size and not (values.min() >= 0.0 and values.max() <= 1.0):
            raise ValueError("DDM takes error indicators in [0, 1]; use ADWIN or PageHinkley for losses")
        return values

    def _scan(self, chunk: np.ndarray) -> int:
        counts = self._n + np.arange(1, chunk.size + 1, dtype=np.float64)
        rates = (self._p * self._n + np.cumsum(chunk)) / counts
        # Until warm_start values have been seen nothing is tracked or tested.
        first = int(np.searchsorted(counts, self.warm_start, side="right"))
        p, n = rates[first:], counts[first:]
        s = np.sqrt(p * (1 - p) / n)
        ps = p + s
        # (p_min, s_min) are taken where p + s reached its running minimum, the latest
        # position winning ties (River updates on "<=").
        previous_min = np.minimum.accumulate(np.concatenate(([self._ps_min], ps)))[:-1]
        positions = np.arange(ps.size)
        latest = np.maximum.accumulate(np.where(ps <= previous_min, positions, -1))
        have = latest >= 0
        p_min = np.where(have, p[np.maximum(latest, 0)], self._p_min)
        s_min = np.where(have, s[np.maximum(latest, 0)], self._s_min)
        drifted = ps > p_min + self.drift_threshold * s_min
        if drifted.any():
            return first + int(np.argmax(drifted))
        self._n = int(counts[-1])
        self._p = float(rates[-1])
        if ps.size:
            self._p_min, self._s_min = float(p_min[-1]), float(s_min[-1])
            self._ps_min = min(self._ps_min, float(ps.min()))
            self.warning_detected = bool(ps[-1] > p_min[-1] + self.warning_threshold * s_min[-1])
        return -1

    def to_state(self) -> dict:
        """JSON-able parameters and state, for checkpoints."""
        return {
            "params": {"warm_start": self.warm_start, "warning_threshold": self.warning_threshold,
                       "drift_threshold": self.drift_threshold},
            "n": self._n, "p": self._p, "p_min": self._p_min, "s_min": self._s_min,
            "ps_min": None if np.isinf(self._ps_min) else self._ps_min,
            "drift_detected": self.drift_detected, "warning_detected": self.warning_detected,
        }

    @classmethod
    def from_state(cls, state: dict) -> DDM:
        detector = cls(**state["params"])
        detector._n = state["n"]
        detector._p = state["p"]
        detector._p_min = state["p_min"]
        detector._s_min = state["s_min"]
        detector._ps_min = float("inf") if state["ps_min"] is None else state["ps_min"]
        detector.drift_detected = state["drift_detected"]
        detector.warning_detected = state["warning_detected"]
        return detector
