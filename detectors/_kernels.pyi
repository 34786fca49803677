"""Native drift-test kernels (native/kernels/, Rust); optional: see detectors/stattests.py."""

import numpy as np

def ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """scipy.stats.ks_2samp's two-sided statistic of two sorted, non-empty, contiguous
    float64 arrays, bit for bit; ValueError if either is empty or not contiguous."""

class WindowTabulation:
    """The numerical columns of a sliding window of ``capacity`` rows, each counted against
    its reference column (sorted, finite, non-empty float64 arrays); see
    detectors/tabulation.py. ValueError for a reference that is not sorted and finite, a
    capacity of 0, or pushed columns that do not match."""

    def __init__(self, capacity: int, references: list[np.ndarray]) -> None: ...
    @property
    def rows(self) -> int: ...
    def push(self, columns: list[np.ndarray]) -> None:
        """Appends rows (one contiguous float64 array per column, all of one length)."""
    def summaries(self) -> list[tuple[float, int, int, int, int]]:
        """Every column's ``(statistic, present, missing, below, above)``."""
