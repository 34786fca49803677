"""Performance estimated without labels: confidence-based performance estimation (CBPE).

A binary classifier's scores, once calibrated, are the probability that each prediction is
positive; the expected confusion matrix of a chunk follows from them and the predictions,
and from it every metric. This reproduces NannyML 0.13.1's ``CBPE`` for binary
classification:

* calibration: isotonic regression fitted on the reference (values outside the reference's
  score range clipped), used only when NannyML's ``needs_calibration`` rule says so: the
  expected calibration error, over ten stratified 90/10 splits of the reference (sklearn's
  ``StratifiedShuffleSplit(random_state=42)``, reproduced with ``numpy.random.RandomState``),
  is lower after calibration than before; never when the reference holds one class or its
  ROC AUC exceeds 0.999;
* estimates per chunk: ROC AUC from the calibrated scores ranked by the raw ones, accuracy,
  precision, recall, F1 and specificity from the expected confusion matrix;
* sampling error from reference components (NannyML's formulas) and the chunk's size, with
  confidence bounds at +/- 3 sampling errors clipped to [0, 1];
* alert thresholds from the realised metric of the reference chunks: mean +/- 3 standard
  deviations, a bound beyond [0, 1] replaced by 0 or 1 (NannyML's limits), or a configured
  ``(lower, upper)`` pair; a chunk alerts when its estimate falls outside.

Chunks are ``chunk_size`` rows in order, the remainder kept as a last, smaller chunk; without
``chunk_size`` each data set is cut into ten chunks of ``len // 10`` rows plus that remainder
(NannyML's default chunker). Rows whose score (or prediction, for the metrics that use it)
is missing are left out of a chunk's estimate, as NannyML does. One deliberate departure: a
reference with a class of a single row, where sklearn's split raises, is left uncalibrated.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> scores = rng.uniform(size=5000)
>>> labels = (rng.uniform(size=5000) < scores).astype(int)
>>> cbpe = CBPE(metrics=["accuracy", "roc_auc"], chunk_size=1000).fit(labels, scores, scores >= 0.5)
>>> [round(bound, 3) for bound in cbpe.thresholds["accuracy"]]
[0.725, 0.777]
>>> shifted = rng.uniform(0.3, 0.7, size=1000)     # less confident: more mistakes expected
>>> accuracy = cbpe.estimate(shifted, shifted >= 0.5)[0].metrics["accuracy"]
>>> round(accuracy.value, 3), accuracy.alert
(0.598, True)
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Protocol

import numpy as np

__all__ = [
    "BINARY_METRICS",
    "CBPE",
    "ChunkEstimate",
    "IsotonicCalibrator",
    "MetricEstimate",
    "chunk_slices",
    "needs_calibration",
]

BINARY_METRICS = ("roc_auc", "f1", "precision", "recall", "specificity", "accuracy")
# NannyML's SAMPLING_ERROR_RANGE and StandardDeviationThreshold's default multiplier.
SAMPLING_ERROR_RANGE = 3
STD_MULTIPLIER = 3
DEFAULT_CHUNK_COUNT = 10


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


def chunk_slices(length: int, chunk_size: int | None) -> list[slice]:
    """Consecutive chunks of ``chunk_size`` rows and a last, smaller one for the remainder;
    without ``chunk_size``, ten chunks of ``length // 10`` rows and the remainder."""
    size = length // DEFAULT_CHUNK_COUNT if chunk_size is None else int(chunk_size)
    if size <= 0:
        raise ValueError(f"cannot cut {length} rows into chunks of {size} rows")
    return [slice(start, min(start + size, length)) for start in range(0, length, size)]


# --- estimates from calibrated scores (NannyML's estimate_* functions) ---

def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator != 0 else 0.0


# The expected confusion matrix of a chunk: (tp, fp, fn, tn), sums of calibrated probabilities.
ExpectedCells = tuple[float, float, float, float]


def _estimate_roc_auc(calibrated: np.ndarray, raw: np.ndarray, predicted: np.ndarray | None,
                      cells: ExpectedCells | None = None) -> float:
    order = np.argsort(raw)[::-1]
    calibrated = calibrated[order]
    with np.errstate(divide="ignore", invalid="ignore"):
        cumulative = np.cumsum(calibrated)
        tps = np.round(np.concatenate(([0.0], cumulative)), 5)
        fps = np.round(np.concatenate(([0.0], 1 + np.arange(len(calibrated)) - cumulative)), 5)
        tpr, fpr = tps / tps[-1], fps / fps[-1]
        return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _expected_cells(calibrated: np.ndarray, predicted: np.ndarray) -> ExpectedCells:
    positive = predicted == 1
    tp = float(np.sum(calibrated[positive]))
    fp = float(np.sum(1 - calibrated[positive]))
    fn = float(np.sum(calibrated[~positive]))
    tn = float(np.sum(1 - calibrated[~positive]))
    return tp, fp, fn, tn


# ``cells``: the expected confusion matrix when the caller has it already (one per chunk).
# ``raw``: unused by these, which read the calibrated scores only (multiclass passes None).
def _estimate_f1(calibrated: np.ndarray, raw: np.ndarray | None, predicted: np.ndarray,
                 cells: ExpectedCells | None = None) -> float:
    tp, fp, fn, _ = cells or _expected_cells(calibrated, predicted)
    return _ratio(tp, tp + 0.5 * (fp + fn))


def _estimate_precision(calibrated: np.ndarray, raw: np.ndarray | None, predicted: np.ndarray,
                        cells: ExpectedCells | None = None) -> float:
    tp, fp, _, _ = cells or _expected_cells(calibrated, predicted)
    return _ratio(tp, tp + fp)


def _estimate_recall(calibrated: np.ndarray, raw: np.ndarray | None, predicted: np.ndarray,
                     cells: ExpectedCells | None = None) -> float:
    tp, _, fn, _ = cells or _expected_cells(calibrated, predicted)
    return _ratio(tp, tp + fn)


def _estimate_specificity(calibrated: np.ndarray, raw: np.ndarray | None, predicted: np.ndarray,
                          cells: ExpectedCells | None = None) -> float:
    _, fp, _, tn = cells or _expected_cells(calibrated, predicted)
    return _ratio(tn, tn + fp)


def _estimate_accuracy(calibrated: np.ndarray, raw: np.ndarray | None, predicted: np.ndarray,
                       cells: ExpectedCells | None = None) -> float:
    tp, _, _, tn = cells or _expected_cells(calibrated, predicted)
    return (tp + tn) / len(predicted)


# --- realised metrics (sklearn's, with NannyML's NaN cases) ---

def _realized_roc_auc(labels, raw, predicted) -> float:
    return roc_auc(labels, raw)


def _counts(labels, predicted) -> tuple[int, int, int, int]:
    truth, positive = labels == 1, predicted == 1
    return (int(np.sum(truth & positive)), int(np.sum(~truth & positive)),
            int(np.sum(truth & ~positive)), int(np.sum(~truth & ~positive)))


def _both_classes(labels, predicted) -> bool:
    return len(np.unique(labels)) > 1 and len(np.unique(predicted)) > 1


def _realized_f1(labels, raw, predicted) -> float:
    tp, fp, fn, _ = _counts(labels, predicted)
    return _ratio(tp, tp + 0.5 * (fp + fn)) if _both_classes(labels, predicted) else float("nan")


def _realized_precision(labels, raw, predicted) -> float:
    tp, fp, _, _ = _counts(labels, predicted)
    return _ratio(tp, tp + fp) if _both_classes(labels, predicted) else float("nan")


def _realized_recall(labels, raw, predicted) -> float:
    tp, _, fn, _ = _counts(labels, predicted)
    return _ratio(tp, tp + fn) if _both_classes(labels, predicted) else float("nan")


def _realized_specificity(labels, raw, predicted) -> float:
    _, fp, _, tn = _counts(labels, predicted)
    return tn / (tn + fp) if tn + fp else float("nan")


def _realized_accuracy(labels, raw, predicted) -> float:
    return float(np.mean(labels == predicted))


# --- sampling error components from the reference (NannyML's sampling_error.binary_classification) ---

def _auroc_components(labels, raw, predicted) -> tuple[float, float]:
    labels, raw = labels.astype(float), raw.astype(float)
    if np.mean(labels) > 0.5:
        labels, raw = np.abs(labels - 1), 1 - raw
    order = np.argsort(raw)  # NannyML's (unstable) order: tied scores keep its rank assignment
    labels = labels[order]
    positive_ranks = np.unique(labels * np.arange(len(labels)))[1:]
    ser = positive_ranks - np.arange(len(positive_ranks))
    positives = np.sum(labels)
    return float(np.std(ser / (len(labels) - positives))), float(positives / len(labels))


def _component(values_one: int, values_zero: int) -> float:
    values = np.concatenate([np.ones(values_one), np.zeros(values_zero)])
    return float(np.std(values)) if len(values) else float("nan")


def _f1_components(labels, raw, predicted) -> tuple[float, float]:
    tp, fp, fn, _ = _counts(labels, predicted)
    relevant = tp + fp + fn
    if relevant == 0:
        return float("nan"), 0.0
    correcting_factor = relevant / ((fn + fp) * 0.5 + tp)
    return _component(tp, fp + fn) * correcting_factor, relevant / len(labels)


def _precision_components(labels, raw, predicted) -> tuple[float, float]:
    tp, fp, _, _ = _counts(labels, predicted)
    return _component(tp, fp), float(np.sum(predicted)) / len(labels)


def _recall_components(labels, raw, predicted) -> tuple[float, float]:
    tp, _, fn, _ = _counts(labels, predicted)
    return _component(tp, fn), float(np.sum(labels)) / len(labels)


def _specificity_components(labels, raw, predicted) -> tuple[float, float]:
    _, fp, _, tn = _counts(labels, predicted)
    return _component(tn, fp), (tn + fp) / len(labels)


def _accuracy_components(labels, raw, predicted) -> tuple[float, float]:
    # NannyML's accuracy error is std / sqrt(n): a fraction of 1 in the shared formula.
    return float(np.std((labels.astype(int) == predicted.astype(int)).astype(int))), 1.0


class _Estimate(Protocol):
    """A metric's estimate from calibrated and raw scores and predictions; ``cells`` is the
    chunk's expected confusion matrix where already computed (shared by the metrics)."""

    def __call__(self, calibrated: np.ndarray, raw: np.ndarray, predicted: np.ndarray,
                 cells: ExpectedCells | None = None) -> float: ...


@dataclass(frozen=True)
class _MetricDefinition:
    estimate: _Estimate
    realized: Callable[[np.ndarray, np.ndarray, np.ndarray], float]
    components: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[float, float]]
    uses_predictions: bool = True


_BINARY = {
    "roc_auc": _MetricDefinition(_estimate_roc_auc, _realized_roc_auc, _auroc_components, uses_predictions=False),
    "f1": _MetricDefinition(_estimate_f1, _realized_f1, _f1_components),
    "precision": _MetricDefinition(_estimate_precision, _realized_precision, _precision_components),
    "recall": _MetricDefinition(_estimate_recall, _realized_recall, _recall_components),
    "specificity": _MetricDefinition(_estimate_specificity, _realized_specificity, _specificity_components),
    "accuracy": _MetricDefinition(_estimate_accuracy, _realized_accuracy, _accuracy_components),
}


@dataclass(frozen=True)
class MetricEstimate:
    """One metric of one chunk: the estimate, its sampling error and confidence bounds, the
    alert thresholds, the verdict, and the realised value when the chunk's labels are known."""

    value: float
    sampling_error: float
    lower_confidence_bound: float
    upper_confidence_bound: float
    lower_threshold: float | None
    upper_threshold: float | None
    alert: bool
    realized: float | None = None


@dataclass(frozen=True)
class ChunkEstimate:
    """A chunk's rows ``[start, end)`` and its metrics."""

    start: int
    end: int
    metrics: dict[str, MetricEstimate]

    @property
    def size(self) -> int:
        return self.end - self.start

    def to_dict(self) -> dict:
        """JSON-ready: an undefined value (NaN, as for a chunk without scores) is None."""
        return {"start": self.start, "end": self.end, "size": self.size,
                "metrics": {name: {key: None if isinstance(value, float) and math.isnan(value) else value
                                   for key, value in asdict(metric).items()}
                            for name, metric in self.metrics.items()}}


def checked_configuration(metrics, known: Sequence[str], chunk_size, thresholds):
    """The metrics as a list and the configured thresholds as a dict, or a ValueError naming
    what is wrong."""
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [name for name in metrics if name not in known]
    if not metrics or unknown:
        raise ValueError(f"unknown CBPE metric(s) {unknown or metrics!r}; use any of {', '.join(known)}")
    if chunk_size is not None and int(chunk_size) <= 0:
        raise ValueError(f"chunk_size must be positive, not {chunk_size}")
    thresholds = dict(thresholds or {})
    for name, (lower, upper) in thresholds.items():
        if name not in metrics:
            raise ValueError(f"threshold for metric {name!r}, which is not estimated")
        if lower is not None and upper is not None and lower >= upper:
            raise ValueError(f"threshold for {name}: lower {lower} must be below upper {upper}")
    return metrics, thresholds


def _as_float(values, name: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers (0/1 for labels and predictions)") from None


class CBPE:
    """Estimates a binary classifier's performance per chunk from its scores and predictions.

    Parameters
    ----------
    metrics : sequence of str
        Any of ``roc_auc``, ``f1``, ``precision``, ``recall``, ``specificity``, ``accuracy``.
    chunk_size : int, optional
        Rows per chunk, for the reference's thresholds and for :meth:`estimate`; by default
        each data set is cut into ten chunks.
    thresholds : mapping of str to (lower, upper), optional
        Constant alert thresholds per metric (either bound may be None); the other metrics
        get the reference chunks' mean +/- 3 standard deviations.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> scores = rng.beta(2, 2, size=5000)
    >>> labels = (rng.uniform(size=5000) < scores ** 2).astype(int)   # over-confident scores
    >>> cbpe = CBPE(metrics=["precision"], chunk_size=1000).fit(labels, scores, scores >= 0.5)
    >>> cbpe.calibrated
    True
    >>> chunks = cbpe.estimate(scores, scores >= 0.5, y_true=labels)
    >>> [(round(chunk.metrics["precision"].value, 2), round(chunk.metrics["precision"].realized, 2))
    ...  for chunk in chunks[:3]]
    [(0.5, 0.5), (0.51, 0.52), (0.49, 0.48)]
    """

    def __init__(self, metrics: Sequence[str] = BINARY_METRICS, chunk_size: int | None = None,
                 thresholds: Mapping[str, tuple[float | None, float | None]] | None = None):
        metrics, thresholds = checked_configuration(metrics, BINARY_METRICS, chunk_size, thresholds)
        self.metrics = metrics
        self.chunk_size = chunk_size
        self.configured_thresholds = thresholds
        self.calibrated = False
        self.thresholds: dict[str, tuple[float | None, float | None]] = {}
        self._components: dict[str, tuple[float, float]] = {}
        self._calibrator: IsotonicCalibrator | None = None

    def fit(self, y_true, y_pred_proba, y_pred) -> CBPE:
        """Learn calibration, sampling-error components and thresholds from a labelled reference."""
        labels, scores, predicted = (_as_float(y_true, "y_true"), _as_float(y_pred_proba, "y_pred_proba"),
                                     _as_float(y_pred, "y_pred"))
        if not len(labels) == len(scores) == len(predicted):
            raise ValueError("y_true, y_pred_proba and y_pred must have the same length")
        if not len(labels):
            raise ValueError("the reference has no rows")
        if np.isnan(labels).any() or np.isnan(scores).any() or np.isnan(predicted).any():
            raise ValueError("the reference has missing labels, scores or predictions")
        _check_binary(labels, "y_true")
        _check_binary(predicted, "y_pred")
        slices = chunk_slices(len(labels), self.chunk_size)
        for name in self.metrics:
            metric = _BINARY[name]
            self._components[name] = metric.components(labels, scores, predicted)
            if name in self.configured_thresholds:
                self.thresholds[name] = self.configured_thresholds[name]
                continue
            realized = np.array([metric.realized(labels[part], scores[part], predicted[part]) for part in slices])
            self.thresholds[name] = _standard_deviation_thresholds(realized)
        self.calibrated = needs_calibration(labels, scores)
        self._calibrator = IsotonicCalibrator().fit(scores, labels) if self.calibrated else None
        return self

    def calibrate(self, y_pred_proba) -> np.ndarray:
        """The scores as the estimator reads them: calibrated if the reference needed it."""
        scores = _as_float(y_pred_proba, "y_pred_proba")
        return self._calibrator.calibrate(scores) if self._calibrator is not None else scores

    def estimate_chunk(self, y_pred_proba, y_pred, y_true=None) -> dict[str, MetricEstimate]:
        """Every metric of one chunk (a service window); ``y_true`` adds the realised values."""
        raw, predicted, labels = self._inputs(y_pred_proba, y_pred, y_true)
        return self._estimate(raw, self.calibrate(raw), predicted, labels)

    def estimate(self, y_pred_proba, y_pred, y_true=None) -> list[ChunkEstimate]:
        """Cut the data into chunks (``chunk_size``) and estimate every metric of each."""
        raw, predicted, labels = self._inputs(y_pred_proba, y_pred, y_true)
        calibrated = self.calibrate(raw)
        return [ChunkEstimate(part.start, part.stop, self._estimate(
                    raw[part], calibrated[part], predicted[part], None if labels is None else labels[part]))
                for part in chunk_slices(len(raw), self.chunk_size)]

    def to_bytes(self) -> bytes:
        """The fitted estimator as an ``.npz`` archive (a JSON header and the calibrator's
        arrays), no pickle; :meth:`from_bytes` gives back one that estimates identically."""
        if not self.thresholds:
            raise RuntimeError("fit the estimator on a reference first")
        header = {"metrics": self.metrics, "chunk_size": self.chunk_size, "calibrated": self.calibrated,
                  "configured_thresholds": self.configured_thresholds, "thresholds": self.thresholds,
                  "components": self._components}
        arrays = {} if self._calibrator is None else {"x": self._calibrator._x, "y": self._calibrator._y}
        buffer = io.BytesIO()
        # numpy's stub lets a **dict of arrays fill savez's allow_pickle: bool, and so refuses it.
        np.savez(buffer, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> CBPE:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            header = json.loads(archive["header"].tobytes().decode())
            arrays = {key: archive[key] for key in archive.files if key != "header"}
        estimator = cls(header["metrics"], header["chunk_size"],
                        {name: tuple(pair) for name, pair in header["configured_thresholds"].items()})
        estimator.calibrated = header["calibrated"]
        estimator.thresholds = {name: tuple(pair) for name, pair in header["thresholds"].items()}
        estimator._components = {name: tuple(pair) for name, pair in header["components"].items()}
        if arrays:
            estimator._calibrator = IsotonicCalibrator()
            estimator._calibrator._x, estimator._calibrator._y = arrays["x"], arrays["y"]
        return estimator

    def _inputs(self, y_pred_proba, y_pred, y_true):
        if not self.thresholds:
            raise RuntimeError("fit the estimator on a reference first")
        raw = _as_float(y_pred_proba, "y_pred_proba")
        predicted = _as_float(y_pred, "y_pred")
        labels = None if y_true is None else _as_float(y_true, "y_true")
        if len(raw) != len(predicted) or (labels is not None and len(labels) != len(raw)):
            raise ValueError("y_pred_proba, y_pred and y_true must have the same length")
        _check_binary(predicted, "y_pred")
        if labels is not None:
            _check_binary(labels, "y_true")
        return raw, predicted, labels

    def _estimate(self, raw, calibrated, predicted, labels) -> dict[str, MetricEstimate]:
        estimates = {}
        scored = ~np.isnan(raw)
        # The rows each kind of metric reads (with a score; and a prediction), with their
        # expected confusion matrix: selected and summed once per chunk, not once per metric.
        usable: dict[bool, tuple[np.ndarray, int, tuple[np.ndarray, np.ndarray, np.ndarray], ExpectedCells | None]] = {}
        for name in self.metrics:
            metric = _BINARY[name]
            if metric.uses_predictions not in usable:
                present = scored & ~np.isnan(predicted) if metric.uses_predictions else scored
                count = int(present.sum())
                rows = (calibrated, raw, predicted) if count == len(raw) else \
                    (calibrated[present], raw[present], predicted[present])
                cells = _expected_cells(rows[0], rows[2]) if count and metric.uses_predictions else None
                usable[metric.uses_predictions] = (present, count, rows, cells)
            present, count, rows, cells = usable[metric.uses_predictions]
            if count:
                value = metric.estimate(*rows, cells=cells)
                std, fraction = self._components[name]
                error = float(std / np.sqrt(count * fraction)) if fraction else float("nan")
            else:
                value = error = float("nan")
            lower, upper = self.thresholds[name]
            realized = None
            if labels is not None:
                known = ~np.isnan(labels) & ~np.isnan(predicted if metric.uses_predictions else raw)
                realized = (metric.realized(labels[known], raw[known], predicted[known]) if known.any()
                            else float("nan"))
            estimates[name] = MetricEstimate(
                value=value,
                sampling_error=error,
                lower_confidence_bound=float(np.maximum(0.0, value - SAMPLING_ERROR_RANGE * error)),
                upper_confidence_bound=float(np.minimum(1.0, value + SAMPLING_ERROR_RANGE * error)),
                lower_threshold=lower,
                upper_threshold=upper,
                alert=bool((lower is not None and value < lower) or (upper is not None and value > upper)),
                realized=realized,
            )
        return estimates


def _check_binary(values: np.ndarray, name: str) -> None:
    other = values[~np.isnan(values) & ~np.isin(values, (0.0, 1.0))]
    if len(other):
        raise ValueError(f"{name} must be 0 or 1 (binary classification), not {other[0]:g}")


def _standard_deviation_thresholds(values: np.ndarray) -> tuple[float | None, float | None]:
    """NannyML's StandardDeviationThreshold over the reference chunks, within the metric's [0, 1]."""
    if np.isnan(values).all():
        return None, None
    mean, std = float(np.nanmean(values)), float(np.nanstd(values))
    lower, upper = mean - STD_MULTIPLIER * std, mean + STD_MULTIPLIER * std
    return (0.0 if lower <= 0 else lower), (1.0 if upper >= 1 else upper)
