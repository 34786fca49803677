"""Page-Hinkley test for a change in the mean of a stream, as River's ``drift.PageHinkley``.

The cumulative deviations from the running mean, faded by ``alpha``, are a first-order
linear recurrence, so a batch is computed with a few array operations (a cumulative sum
for the mean, a linear filter for the fading sums, running minima and maxima) and the
Python loop runs once per detection, not once per value.

>>> import numpy as np
>>> values = np.concatenate([np.zeros(1000), np.full(1000, 5.0)])
>>> PageHinkley().update_many(values).tolist()
[1010]
"""

from __future__ import annotations

import numpy as np

from detectors.base import StreamDetector

MODES = ("up", "down", "both")


class PageHinkley(StreamDetector):
    """River's defaults: ``min_instances=30, delta=0.005, threshold=50, alpha=1-1e-4, mode="both"``."""

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self.mode = mode
        self.drift_detected = False
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._mean = 0.0
        self._sum_increase = 0.0
        self._sum_decrease = 0.0
        self._min_increase = float("inf")
        self._max_decrease = -1.0  # River starts the maximum at -1, not -inf

    def _scan(self, chunk: np.ndarray) -> int:
        """Advance over ``chunk``; return the first detection's offset (state left just before
        it, to be reset) or -1 with the state advanced over the whole chunk."""
        counts = self._n + np.arange(1, chunk.size + 1, dtype=np.float64)
        means = (self._mean * self._n + np.cumsum(chunk)) / counts
        deviations = chunk - means
        feedback = [1.0, -self.alpha]
        # scipy.signal costs ~50 MB at import: on first use, not when driftline starts.
        from scipy.signal import lfilter  # noqa: PLC0415

        increase = lfilter([1.0], feedback, deviations - self.delta, zi=[self.alpha * self._sum_increase])[0]
        decrease = lfilter([1.0], feedback, deviations + self.delta, zi=[self.alpha * self._sum_decrease])[0]
        min_increase = np.minimum.accumulate(np.minimum(increase, self._min_increase))
        max_decrease = np.maximum.accumulate(np.maximum(decrease, self._max_decrease))
        testable = counts >= self.min_instances
        if self.mode == "up":
            drifted = (increase - min_increase) > self.threshold
        elif self.mode == "down":
            drifted = (max_decrease - decrease) > self.threshold
        else:
            drifted = ((increase - min_increase) > self.threshold) | ((max_decrease - decrease) > self.threshold)
        drifted &= testable
        if drifted.any():
            return int(np.argmax(drifted))
        self._n = int(counts[-1])
        self._mean = float(means[-1])
        self._sum_increase = float(increase[-1])
        self._sum_decrease = float(decrease[-1])
        self._min_increase = float(min_increase[-1])
        self._max_decrease = float(max_decrease[-1])
        return -1

    def to_state(self) -> dict:
        """JSON-able parameters and state, for checkpoints."""
        return {
            "params": {"min_instances": self.min_instances, "delta": self.delta, "threshold": self.threshold,
                       "alpha": self.alpha, "mode": self.mode},
            "n": self._n, "mean": self._mean, "sum_increase": self._sum_increase,
            "sum_decrease": self._sum_decrease,
            "min_increase": None if np.isinf(self._min_increase) else self._min_increase,
            "max_decrease": self._max_decrease, "drift_detected": self.drift_detected,
        }

    @classmethod
    def from_state(cls, state: dict) -> PageHinkley:
        detector = cls(**state["params"])
        detector._n = state["n"]
        detector._mean = state["mean"]
        detector._sum_increase = state["sum_increase"]
        detector._sum_decrease = state["sum_decrease"]
        detector._min_increase = float("inf") if state["min_increase"] is None else state["min_increase"]
        detector._max_decrease = state["max_decrease"]
        detector.drift_detected = state["drift_detected"]
        return detector
