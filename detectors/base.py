"""The interface shared by the concept-drift detectors (ADWIN, Page-Hinkley, DDM).

A detector is fed a stream of values (errors 0/1, or losses) in order, a numpy batch at a
time; ``update_many`` answers with the indices where drift was detected. Each detector only
implements ``_scan(span)``: advance over ``span`` with array operations and return the offset
of the first detection (its state left just before it) or -1 (state advanced over it all);
and ``_reset()``: start afresh, as River's detectors do after a detection.

>>> from detectors import PageHinkley
>>> import numpy as np
>>> stream = np.concatenate((np.zeros(500), np.ones(500)))
>>> PageHinkley().update_many(stream).tolist()
[553]
"""

from __future__ import annotations

import numpy as np


class StreamDetector:
    span = 4096  # values scanned per array operation; bounds the temporaries' memory
    drift_detected = False

    def update(self, x: float) -> bool:
        """Feed one value; True when it completes a detection."""
        return bool(self.update_many(np.array([x], dtype=np.float64)).size)

    def update_many(self, values) -> np.ndarray:
        """Feed values in order; returns the indices (into ``values``) where drift was detected.

        The loop runs once per detection or per ``span`` values, never per value."""
        values = self._check(np.asarray(values, dtype=np.float64))
        detections = []
        start = 0
        while start < values.size:
            span = values[start : start + self.span]
            hit = self._scan(span)
            if hit < 0:
                start += span.size
                continue
            detections.append(start + hit)
            self._reset()
            start += hit + 1
        self.drift_detected = bool(detections) and detections[-1] == values.size - 1
        return np.asarray(detections, dtype=np.int64)

    def _check(self, values: np.ndarray) -> np.ndarray:
        return values

    def _scan(self, span: np.ndarray) -> int:
        raise NotImplementedError

    def _reset(self) -> None:
        raise NotImplementedError
