"""ADWIN, adaptive windowing (Bifet & Gavaldà, 2007), as River's ``drift.ADWIN``.

The window is kept as an exponential histogram: level ``i`` holds up to ``max_buckets``
buckets of ``2**i`` values each (total and variance), oldest first; when a level overflows
its two oldest buckets merge into one of the next level. Every ``clock`` values each split
of the window between buckets is tested; a difference of means beyond the Hoeffding-style
bound is a drift, after which, as in River, the detector starts afresh.

Speed: between detections the window only grows, so which buckets exist after ``w`` values
follows from ``w`` alone, and each bucket is the pairwise sum of an aligned block of
``2**i`` values. A span of values is therefore handled with array operations: all blocks
the span can form, level by level; the bucket layout at every check point; all splits of
all check points at once. Sums and merges use the same operations in the same order as
River, so every value, and every detection, is the same. Python loops run per level and
per detection, never per value.

>>> import numpy as np
>>> values = np.concatenate([np.zeros(1000), np.ones(1000)])
>>> ADWIN().update_many(values).tolist()
[1023]
"""

from __future__ import annotations

import math

import numpy as np

from detectors.base import StreamDetector


class ADWIN(StreamDetector):
    """River's defaults: ``delta=0.002, clock=32, max_buckets=5, min_window_length=5, grace_period=10``."""

    span = 8192

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
        self._totals: list[list[float]] = []  # per level, oldest bucket first
        self._variances: list[list[float]] = []
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

    def _bucket_counts(self, widths: np.ndarray, levels: int) -> np.ndarray:
        """Buckets per level (columns) after ``widths`` values since the last reset (rows).

        A level that has received r buckets holds r of them while r <= max_buckets; after
        that every second arrival triggers a merge, so it holds max_buckets - 1 or
        max_buckets, and passes the rest on in pairs."""
        limit = self.max_buckets
        counts = np.zeros((widths.size, levels), dtype=np.int64)
        received = widths.astype(np.int64)
        for level in range(levels):
            counts[:, level] = np.where(received <= limit, received, limit - 1 + (received - limit - 1) % 2)
            received = (received - counts[:, level]) // 2
        return counts

    def _scan(self, span: np.ndarray) -> int:
        """Advance over ``span``; return the offset of the first detection (state to be reset)
        or -1 with the state advanced over the whole span."""
        size = span.size
        limit = self.max_buckets
        # The window's width, sum and variance after each value, accumulated as River does.
        widths = self._width + np.arange(1, size + 1, dtype=np.float64)
        totals_after = np.add.accumulate(np.concatenate(([self._total], span)))
        increments = np.zeros(size)
        grown = widths > 1
        deltas = span[grown] - totals_after[:-1][grown] / (widths[grown] - 1)
        increments[grown] = (widths[grown] - 1) * deltas * deltas / widths[grown]
        variances_after = np.add.accumulate(np.concatenate(([self._variance], increments)))[1:]
        totals_after = totals_after[1:]

        # Every block each level can hold during the span: the buckets carried over, then the
        # pairwise merges of the level below. first[i] is the block number of entry 0.
        levels = max(len(self._totals), 1) + int(np.ceil(np.log2((self._width + size) / limit + 2))) + 1
        start_counts = self._bucket_counts(np.array([self._width]), levels)[0]
        covered_after = np.cumsum((start_counts * (1 << np.arange(levels)))[::-1])[::-1]
        block_totals: list[np.ndarray] = []
        block_variances: list[np.ndarray] = []
        first: list[int] = []
        for level in range(levels):
            carried_t = self._totals[level] if level < len(self._totals) else []
            carried_v = self._variances[level] if level < len(self._variances) else []
            above = int(covered_after[level + 1]) if level + 1 < levels else 0
            first.append(above >> level)
            if level == 0:
                new_t, new_v = span, np.zeros(size)
            else:
                below_t, below_v = block_totals[-1], block_variances[-1]
                pairs = below_t.size // 2
                bucket = float(1 << (level - 1))
                t0, t1 = below_t[0 : 2 * pairs : 2], below_t[1 : 2 * pairs : 2]
                mean0, mean1 = t0 / bucket, t1 / bucket
                new_t = t0 + t1
                new_v = (below_v[0 : 2 * pairs : 2] + below_v[1 : 2 * pairs : 2]
                         + bucket * 0.5 * (mean0 - mean1) * (mean0 - mean1))
            block_totals.append(np.concatenate((np.asarray(carried_t, dtype=np.float64), new_t)))
            block_variances.append(np.concatenate((np.asarray(carried_v, dtype=np.float64), new_v)))

        # Check points: every `clock` values, once the window is past the grace period. A
        # window of one value has no split to test (and its bound, log(2 log 1 / delta), is
        # undefined), so River's check there finds nothing: skipped.
        positions = np.flatnonzero((self._tick + np.arange(1, size + 1)) % self.clock == 0)
        positions = positions[widths[positions] > max(self.grace_period, 1)]
        if positions.size:
            hit = self._first_cut(positions, widths, totals_after, variances_after, block_totals, first, levels)
            if hit >= 0:
                return hit

        end_counts = self._bucket_counts(np.array([self._width + size]), levels)[0]
        end_covered = np.cumsum((end_counts * (1 << np.arange(levels)))[::-1])[::-1]
        top = int(np.max(np.flatnonzero(end_counts), initial=0)) + 1
        self._totals, self._variances = [], []
        for level in range(top):
            above = int(end_covered[level + 1]) if level + 1 < levels else 0
            begin = (above >> level) - first[level]
            self._totals.append(block_totals[level][begin : begin + end_counts[level]].tolist())
            self._variances.append(block_variances[level][begin : begin + end_counts[level]].tolist())
        self._width += size
        self._total = float(totals_after[-1])
        self._variance = float(variances_after[-1])
        self._tick += size
        return -1

    def _first_cut(self, positions, widths, totals_after, variances_after, block_totals, first, levels) -> int:
        """Offset of the first check point at which some split of the window drifts, or -1."""
        limit = self.max_buckets
        width = widths[positions]
        counts = self._bucket_counts(width, levels)
        covered = np.cumsum((counts * (1 << np.arange(levels)))[:, ::-1], axis=1)[:, ::-1]
        # Columns: for each level from the oldest (top) down, `limit` bucket slots, oldest first.
        sizes, totals = [], []
        slots = np.arange(limit)
        for level in range(levels - 1, -1, -1):
            above = covered[:, level + 1] if level + 1 < levels else np.zeros(width.size, dtype=np.int64)
            index = (above >> level)[:, None] - first[level] + slots
            present = slots < counts[:, level][:, None]
            values = block_totals[level]
            safe = np.clip(index, 0, max(values.size - 1, 0))
            totals.append(np.where(present, values[safe] if values.size else 0.0, 0.0))
            sizes.append(np.where(present, float(1 << level), 0.0))
        sizes_matrix, totals_matrix = np.hstack(sizes), np.hstack(totals)
        tested = sizes_matrix > 0
        # River stops before the split after the newest bucket (the last one of level 0).
        newest = (levels - 1) * limit + counts[:, 0] - 1
        rows = np.flatnonzero(counts[:, 0] > 0)
        tested[rows, newest[rows]] = False

        floor = float(self.min_window_length)
        n0 = np.add.accumulate(sizes_matrix, axis=1)
        n1 = width[:, None] - n0
        u0 = np.add.accumulate(totals_matrix, axis=1)
        total = totals_after[positions][:, None]
        u1 = np.subtract.accumulate(np.hstack((total, totals_matrix)), axis=1)[:, 1:]
        tested &= (n1 >= floor) & (n0 >= floor)
        delta_prime = np.array([math.log(2.0 * math.log(w) / self.delta) for w in width.tolist()])[:, None]
        share = (variances_after[positions] / width)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            m_recip = 1.0 / (n0 - floor + 1.0) + 1.0 / (n1 - floor + 1.0)
            epsilon = np.sqrt(2.0 * m_recip * share * delta_prime) + 2.0 / 3.0 * delta_prime * m_recip
            drifted = (np.abs(u0 / n0 - u1 / n1) > epsilon) & tested
        hits = np.flatnonzero(drifted.any(axis=1))
        return int(positions[hits[0]]) if hits.size else -1

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
    def from_state(cls, state: dict) -> ADWIN:
        detector = cls(**state["params"])
        detector._totals = [list(level) for level in state["totals"]]
        detector._variances = [list(level) for level in state["variances"]]
        detector._width = state["width"]
        detector._total = state["total"]
        detector._variance = state["variance"]
        detector._tick = state["tick"]
        detector.drift_detected = state["drift_detected"]
        return detector
