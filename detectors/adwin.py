"""ADWIN, adaptive windowing (Bifet & Gavaldà, 2007), as River's ``drift.ADWIN``.

The window is kept as an exponential histogram: level ``i`` holds up to ``max_buckets``
buckets of ``2**i`` values each (total and variance), oldest first. Every ``clock`` values
each split of the window into an older and a newer part is tested; a difference of means
beyond the Hoeffding-style bound is a drift, after which, as in River, the detector starts
afresh.

Speed: the window's sum and variance for a batch come from cumulative sums (computed in the
same order as River's running update, so the floating-point results are identical), and the
split test runs once per ``clock`` values. Filing values into buckets is inherently
sequential; per value it is one list append plus, every other value on average, a merge.

>>> import numpy as np
>>> values = np.concatenate([np.zeros(1000), np.ones(1000)])
>>> ADWIN().update_many(values).tolist()
[1023]
"""

from __future__ import annotations

import math

import numpy as np


class ADWIN:
    """River's defaults: ``delta=0.002, clock=32, max_buckets=5, min_window_length=5, grace_period=10``."""

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ):
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self.drift_detected = False
        self._reset()

    def _reset(self) -> None:
        self._totals: list[list[float]] = [[]]
        self._variances: list[list[float]] = [[]]
        self._width = 0
        self._total = 0.0
        self._variance = 0.0
        self._tick = 0

    @property
    def width(self) -> int:
        """Number of values in the current window."""
        return self._width

    @property
    def estimation(self) -> float:
        """Mean of the current window."""
        return self._total / self._width if self._width else 0.0

    def update(self, x: float) -> bool:
        return bool(self.update_many(np.array([x], dtype=np.float64)).size)

    def update_many(self, values) -> np.ndarray:
        """Feed values in order; returns the indices (into ``values``) where drift was detected."""
        values = np.asarray(values, dtype=np.float64)
        detections = []
        start = 0
        while start < values.size:
            # Insert up to the next check point (every `clock` values), then check.
            stop = min(values.size, start + self.clock - self._tick % self.clock)
            self._insert(values[start:stop])
            self._tick += stop - start
            if self._tick % self.clock == 0 and self._width > self.grace_period and self._cut_found():
                detections.append(stop - 1)
                self._reset()
            start = stop
        self.drift_detected = bool(detections) and detections[-1] == values.size - 1
        return np.asarray(detections, dtype=np.int64)

    def _insert(self, batch: np.ndarray) -> None:
        widths = self._width + np.arange(1, batch.size + 1, dtype=np.float64)
        totals_before = np.add.accumulate(np.concatenate(([self._total], batch)))
        increments = np.zeros(batch.size)
        grown = widths > 1
        deltas = batch[grown] - totals_before[:-1][grown] / (widths[grown] - 1)
        increments[grown] = (widths[grown] - 1) * deltas * deltas / widths[grown]
        self._variance = float(np.add.accumulate(np.concatenate(([self._variance], increments)))[-1])
        self._total = float(totals_before[-1])
        self._width += batch.size

        totals, variances, limit = self._totals, self._variances, self.max_buckets
        level0_totals, level0_variances = totals[0], variances[0]
        for value in batch.tolist():
            level0_totals.append(value)
            level0_variances.append(0.0)
            if len(level0_totals) > limit:
                self._merge_up()

    def _merge_up(self) -> None:
        """Merge the two oldest buckets of each full level into one of the next level."""
        totals, variances = self._totals, self._variances
        level = 0
        while len(totals[level]) > self.max_buckets:
            size = float(1 << level)
            t0, t1 = totals[level][0], totals[level][1]
            mean0, mean1 = t0 / size, t1 / size
            merged_variance = variances[level][0] + variances[level][1] + size * 0.5 * (mean0 - mean1) * (mean0 - mean1)
            del totals[level][:2], variances[level][:2]
            if level + 1 == len(totals):
                totals.append([])
                variances.append([])
            totals[level + 1].append(t0 + t1)
            variances[level + 1].append(merged_variance)
            level += 1

    def _cut_found(self) -> bool:
        """Test every split of the window between buckets, oldest first, as River does.

        The running sums use sequential accumulation, so every value equals River's."""
        sizes, totals = [], []
        for level in range(len(self._totals) - 1, -1, -1):
            sizes += [float(1 << level)] * len(self._totals[level])
            totals += self._totals[level]
        if self._totals[0]:  # River stops before the split after the newest bucket
            sizes.pop()
            totals.pop()
        if not sizes:
            return False
        sizes_array, totals_array = np.array(sizes), np.array(totals)
        width = float(self._width)
        floor = float(self.min_window_length)
        n0 = np.add.accumulate(sizes_array)
        n1 = np.subtract.accumulate(np.concatenate(([width], sizes_array)))[1:]
        u0 = np.add.accumulate(totals_array)
        u1 = np.subtract.accumulate(np.concatenate(([self._total], totals_array)))[1:]
        testable = (n1 >= floor) & (n0 >= floor)
        if not testable.any():
            return False
        n0, n1, u0, u1 = n0[testable], n1[testable], u0[testable], u1[testable]
        delta_prime = math.log(2.0 * math.log(width) / self.delta)
        m_recip = 1.0 / (n0 - floor + 1.0) + 1.0 / (n1 - floor + 1.0)
        epsilon = np.sqrt(2.0 * m_recip * (self._variance / width) * delta_prime) + 2.0 / 3.0 * delta_prime * m_recip
        return bool(np.any(np.abs(u0 / n0 - u1 / n1) > epsilon))

    def to_state(self) -> dict:
        """JSON-able parameters and state, for checkpoints."""
        return {
            "params": {"delta": self.delta, "clock": self.clock, "max_buckets": self.max_buckets,
                       "min_window_length": self.min_window_length, "grace_period": self.grace_period},
            "totals": self._totals, "variances": self._variances, "width": self._width,
            "total": self._total, "variance": self._variance, "tick": self._tick,
            "drift_detected": self.drift_detected,
        }

    @classmethod
    def from_state(cls, state: dict) -> "ADWIN":
        detector = cls(**state["params"])
        detector._totals = [list(level) for level in state["totals"]]
        detector._variances = [list(level) for level in state["variances"]]
        detector._width = state["width"]
        detector._total = state["total"]
        detector._variance = state["variance"]
        detector._tick = state["tick"]
        detector.drift_detected = state["drift_detected"]
        return detector
