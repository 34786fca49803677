"""Calibrating a classifier's scores as NannyML 0.13.1's CBPE does (see :mod:`detectors.cbpe`).

Isotonic regression fitted on the reference (sklearn's ``IsotonicRegression(out_of_bounds="clip")``),
used only where NannyML's ``needs_calibration`` rule says so: the expected calibration error over
ten stratified 90/10 splits (sklearn's ``StratifiedShuffleSplit(random_state=42)``, reproduced with
``numpy.random.RandomState``) is lower after calibration than before. Also ROC AUC with tied
scores sharing their mean rank, which the rule and the realised metrics use.

>>> import numpy as np
>>> calibrator = IsotonicCalibrator().fit(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
>>> calibrator.calibrate(np.array([0.0, 0.37, 1.0])).tolist()
[0.0, 0.5, 1.0]
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np


class IsotonicCalibrator:
    """sklearn's ``IsotonicRegression(out_of_bounds="clip", increasing=True)``: the pool
    adjacent violators fit on the mean label of each distinct score, linear in between,
    constant beyond the fitted range.

    >>> IsotonicCalibrator().fit(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1])).calibrate(
    ...     np.array([0.0, 0.25, 0.35, 1.0]))
    array([0.  , 0.5 , 0.75, 1.  ])
    """

    def fit(self, scores: np.ndarray, labels: np.ndarray) -> IsotonicCalibrator:
        scores = np.asarray(scores, dtype=float)
        labels = np.asarray(labels, dtype=float)
        order = np.lexsort((labels, scores))
        self._x, first, counts = np.unique(scores[order], return_index=True, return_counts=True)
        means = np.add.reduceat(labels[order], first) / counts
        # scipy.optimize and scipy.stats cost ~70 MB at import: on first use, not at start-up.
        from scipy.optimize import isotonic_regression  # noqa: PLC0415

        self._y = np.asarray(isotonic_regression(means, weights=counts.astype(float), increasing=True).x)
        # Only the ends of each flat run matter to the interpolation (inside one, the value is
        # the run's, exactly): a few dozen knots instead of one per distinct score, which
        # makes calibrating a window several times faster and changes no result.
        if len(self._y) > 2:
            flat = np.r_[False, (self._y[1:-1] == self._y[:-2]) & (self._y[1:-1] == self._y[2:]), False]
            self._x, self._y = self._x[~flat], self._y[~flat]
        return self

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=float)
        if len(self._x) == 1:
            return np.where(np.isnan(scores), np.nan, self._y[0])
        return np.interp(np.clip(scores, self._x[0], self._x[-1]), self._x, self._y)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, tied values sharing their mean rank: ``scipy.stats.rankdata(values)``,
    value for value (the ranks are exact halves), without importing scipy.stats (~45 MB).

    >>> average_ranks(np.array([0.3, 0.1, 0.3, 0.2])).tolist()
    [3.5, 1.0, 3.5, 2.0]
    """
    if np.isnan(values).any():  # rankdata's nan_policy="propagate"
        return np.full(values.size, np.nan)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    run = np.cumsum(starts) - 1  # the run of equal values each sorted position belongs to
    bounds = np.append(np.flatnonzero(starts), values.size)  # where each run starts; the end
    ranks = np.empty(values.size, dtype=float)
    ranks[order] = 0.5 * (bounds[run] + bounds[run + 1] + 1)
    return ranks


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic with tied scores sharing their mean rank
    (equal to sklearn's ``roc_auc_score``); NaN with a single class."""
    labels = np.asarray(labels) == 1
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = average_ranks(np.asarray(scores, dtype=float))
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """sklearn.utils.extmath._approximate_mode, drawing from ``rng`` in the same order."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (indices,) = np.where(remainder == value)
            add_now = min(len(indices), need_to_add)
            floored[rng.choice(indices, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def stratified_shuffle_splits(labels: np.ndarray, n_splits: int = 10, test_size: float = 0.1,
                              random_state: int = 42):
    """The (train, test) index pairs of sklearn's ``StratifiedShuffleSplit(n_splits,
    test_size=test_size, random_state=random_state)``, drawn identically."""
    n = len(labels)
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    _, class_of, class_counts = np.unique(labels, return_inverse=True, return_counts=True)
    class_indices = np.split(np.argsort(class_of, kind="stable"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(random_state)
    for _ in range(n_splits):
        n_i = _approximate_mode(class_counts, n_train, rng)
        t_i = _approximate_mode(class_counts - n_i, n_test, rng)
        train: list[int] = []
        test: list[int] = []
        for i, count in enumerate(class_counts):
            shuffled = class_indices[i].take(rng.permutation(count), mode="clip")
            train.extend(shuffled[: n_i[i]])
            test.extend(shuffled[n_i[i]: n_i[i] + t_i[i]])
        yield rng.permutation(train), rng.permutation(test)


def _bin_edges(length: int, bin_count: int) -> np.ndarray:
    if length <= 2 * bin_count:
        bin_count = length // 2
        if bin_count < 2:
            raise ValueError(f"cannot split {length} reference rows into 2 calibration bins")
    edges = np.arange(0, length + 1, length // bin_count)
    edges[-1] = length
    return edges


def _expected_calibration_error(labels: np.ndarray, scores: np.ndarray, edges: np.ndarray) -> float:
    order = scores.argsort()  # NannyML's (unstable) order, so that ties fall into the same bins
    scores, labels = scores[order], labels[order]
    return float(sum((right - left) / len(scores) * abs(scores[left:right].mean() - labels[left:right].mean())
                     for left, right in pairwise(edges)))


def needs_calibration(labels: np.ndarray, scores: np.ndarray, bin_count: int = 10, split_count: int = 10) -> bool:
    """NannyML's ``needs_calibration``: whether isotonic calibration, fitted and applied over
    stratified shuffle splits of the reference, lowers the expected calibration error of the
    held-out scores (ten equal-count bins)."""
    labels = np.asarray(labels, dtype=float)
    scores = np.asarray(scores, dtype=float)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) == 1 or roc_auc(labels, scores) > 0.999 or counts.min() < 2:
        return False
    tested_labels, tested_scores, calibrated_scores = [], [], []
    for train, test in stratified_shuffle_splits(labels, split_count):
        calibrator = IsotonicCalibrator().fit(scores[train], labels[train])
        tested_labels.append(labels[test])
        tested_scores.append(scores[test])
        calibrated_scores.append(calibrator.calibrate(scores[test]))
    labels_test = np.concatenate(tested_labels)
    edges = _bin_edges(len(labels_test), bin_count)
    before = _expected_calibration_error(labels_test, np.concatenate(tested_scores), edges)
    after = _expected_calibration_error(labels_test, np.concatenate(calibrated_scores), edges)
    return before > after
