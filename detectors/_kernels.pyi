"""Native drift-test kernels (native/kernels/, Rust); optional: see detectors/stattests.py."""

import numpy as np

def ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """scipy.stats.ks_2samp's two-sided statistic of two sorted, non-empty, contiguous
    float64 arrays, bit for bit; ValueError if either is empty or not contiguous."""
