"""CBPE for multiclass classifiers, as NannyML 0.13.1 computes it.

Each class's score is calibrated one-vs-rest (isotonic, where NannyML's rule finds that
class's scores need it) and the calibrated scores of a row are renormalised to sum to 1 (a
row summing to 0 becomes uniform). ROC AUC, F1, precision, recall and specificity are the
macro averages of the binary estimates of every class (the class's calibrated score against
"predicted this class"); accuracy is the mean calibrated probability of the predicted class.
Sampling errors follow NannyML's multiclass formulas (per-class variances combined;
ROC AUC's widened by 1.2), thresholds the reference chunks' realised macro metrics.

The reference must hold every class among its labels, at least three classes, and no
missing value. A current row with a missing score or prediction is left out of its chunk.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> classes = ["a", "b", "c"]
>>> scores = rng.dirichlet([1, 1, 1], size=3000)
>>> labels = np.array([rng.choice(classes, p=row) for row in scores])
>>> predicted = np.array(classes)[scores.argmax(axis=1)]
>>> cbpe = MulticlassCBPE(classes, metrics=["accuracy"], chunk_size=1000).fit(labels, scores, predicted)
>>> flat = rng.dirichlet([5, 5, 5], size=1000)                 # less confident scores
>>> accuracy = cbpe.estimate(flat, np.array(classes)[flat.argmax(axis=1)])[0].metrics["accuracy"]
>>> round(accuracy.value, 2), accuracy.alert
(0.46, True)
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from detectors.calibration import IsotonicCalibrator, needs_calibration, roc_auc
from detectors.cbpe import (
    SAMPLING_ERROR_RANGE,
    ChunkEstimate,
    MetricEstimate,
    checked_configuration,
    chunk_slices,
    standard_deviation_thresholds,
)
from detectors.cbpe_metrics import (
    estimate_f1,
    estimate_precision,
    estimate_recall,
    estimate_roc_auc,
    estimate_specificity,
)

__all__ = ["MULTICLASS_METRICS", "MulticlassCBPE"]

MULTICLASS_METRICS = ("roc_auc", "f1", "precision", "recall", "specificity", "accuracy")
MISSING, OTHER = -2, -1  # codes of a missing label or prediction, and of one outside the classes
# NannyML widens the combined ROC AUC sampling error by this factor.
AUROC_ERROR_FACTOR = 1.2


def _codes(values, classes: Sequence) -> np.ndarray:
    lookup = {value: code for code, value in enumerate(classes)}
    return np.fromiter((MISSING if value is None or value != value else lookup.get(value, OTHER)
                        for value in values), dtype=np.int64, count=len(values))


def _variance(ones: int, zeros: int) -> float:
    return float(np.var(np.r_[np.ones(ones), np.zeros(zeros)])) if ones + zeros else float("nan")


def _class_counts(truth: np.ndarray, predicted: np.ndarray) -> tuple[int, int, int, int]:
    return (int(np.sum(truth & predicted)), int(np.sum(~truth & predicted)), int(np.sum(truth & ~predicted)),
            int(np.sum(~truth & ~predicted)))


class MulticlassCBPE:
    """Estimates a multiclass classifier's macro-averaged performance per chunk.

    Parameters
    ----------
    classes : sequence
        The class labels, in the order of the score matrix's columns.
    metrics, chunk_size, thresholds, incomplete
        As for :class:`detectors.cbpe.CBPE` (``incomplete="drop"`` leaves the reference's
        last, smaller chunk out of the thresholds; "keep", the default, is NannyML's).
    """

    def __init__(self, classes: Sequence[Any], metrics: Sequence[str] = MULTICLASS_METRICS,
                 chunk_size: int | None = None,
                 thresholds: Mapping[str, tuple[float | None, float | None]] | None = None,
                 incomplete: str = "keep"):
        if len(set(classes)) != len(classes) or len(classes) < 3:
            raise ValueError("multiclass CBPE needs at least three distinct classes (two: use CBPE)")
        metrics, thresholds = checked_configuration(metrics, MULTICLASS_METRICS, chunk_size, thresholds,
                                                    incomplete)
        # NannyML orders the classes by sorting them; the score columns follow the given order.
        self._order = sorted(range(len(classes)), key=lambda index: classes[index])
        self.classes = [classes[index] for index in self._order]
        self.metrics = metrics
        self.chunk_size = chunk_size
        self.incomplete = incomplete
        self.configured_thresholds = thresholds
        self.thresholds: dict[str, tuple[float | None, float | None]] = {}
        self.calibrated: list[bool] = []
        self._calibrators: list[IsotonicCalibrator | None] = []
        self._components: dict[str, list[tuple[float, float]]] = {}

    def _scores(self, y_pred_proba) -> np.ndarray:
        scores = np.asarray(y_pred_proba, dtype=float)
        if scores.ndim != 2 or scores.shape[1] != len(self.classes):
            raise ValueError(f"y_pred_proba must have one column per class ({len(self.classes)})")
        return scores[:, self._order]

    def fit(self, y_true, y_pred_proba, y_pred) -> MulticlassCBPE:
        """Learn the per-class calibration, sampling-error components and thresholds."""
        scores = self._scores(y_pred_proba)
        labels, predicted = _codes(list(y_true), self.classes), _codes(list(y_pred), self.classes)
        if not len(labels) == len(predicted) == len(scores) or not len(labels):
            raise ValueError("y_true, y_pred_proba and y_pred must have the same, non-zero length")
        if (labels == MISSING).any() or (predicted == MISSING).any() or np.isnan(scores).any():
            raise ValueError("the reference has missing labels, scores or predictions")
        if (labels == OTHER).any() or len(np.unique(labels)) != len(self.classes):
            raise ValueError("the reference labels must hold every class, and only those")
        slices = chunk_slices(len(labels), self.chunk_size, self.incomplete)
        for name in self.metrics:
            self._components[name] = self._reference_components(name, labels, scores, predicted)
            if name in self.configured_thresholds:
                self.thresholds[name] = self.configured_thresholds[name]
                continue
            realized = np.array([self._realized(name, labels[part], scores[part], predicted[part]) for part in slices])
            self.thresholds[name] = standard_deviation_thresholds(realized)
        self._calibrators, self.calibrated = [], []
        for index in range(len(self.classes)):
            truth = (labels == index).astype(float)
            needed = needs_calibration(truth, scores[:, index])
            self.calibrated.append(needed)
            self._calibrators.append(IsotonicCalibrator().fit(scores[:, index], truth) if needed else None)
        return self

    def calibrate(self, y_pred_proba) -> np.ndarray:
        """Calibrated, renormalised scores, columns in sorted class order."""
        return self._calibrate(self._scores(y_pred_proba))

    def _calibrate(self, scores: np.ndarray) -> np.ndarray:
        calibrated = np.column_stack([scores[:, index] if calibrator is None else calibrator.calibrate(scores[:, index])
                                      for index, calibrator in enumerate(self._calibrators)])
        totals = calibrated.sum(axis=1, keepdims=True)
        uniform = np.full_like(calibrated, 1 / len(self.classes))
        return np.divide(calibrated, totals, out=uniform, where=totals != 0)

    def estimate_chunk(self, y_pred_proba, y_pred, y_true=None) -> dict[str, MetricEstimate]:
        """Every metric of one chunk; ``y_true`` adds the realised values."""
        scores, predicted, labels = self._inputs(y_pred_proba, y_pred, y_true)
        return self._estimate(scores, self._calibrate(scores), predicted, labels)

    def estimate(self, y_pred_proba, y_pred, y_true=None) -> list[ChunkEstimate]:
        """Cut the data into chunks (``chunk_size``) and estimate every metric of each."""
        scores, predicted, labels = self._inputs(y_pred_proba, y_pred, y_true)
        calibrated = self._calibrate(scores)
        return [ChunkEstimate(part.start, part.stop, self._estimate(
                    scores[part], calibrated[part], predicted[part], None if labels is None else labels[part]))
                for part in chunk_slices(len(scores), self.chunk_size)]

    def to_bytes(self) -> bytes:
        """The fitted estimator as an ``.npz`` archive (a JSON header and each calibrated
        class's arrays), no pickle; :meth:`from_bytes` gives back one that estimates identically.
        The classes must be JSON scalars (strings, numbers, booleans)."""
        if not self.thresholds:
            raise RuntimeError("fit the estimator on a reference first")
        header = {"classes": [self.classes[self._order.index(index)] for index in range(len(self.classes))],
                  "metrics": self.metrics, "chunk_size": self.chunk_size, "incomplete": self.incomplete,
                  "configured_thresholds": self.configured_thresholds, "thresholds": self.thresholds,
                  "calibrated": self.calibrated, "components": self._components}
        arrays = {}
        for index, calibrator in enumerate(self._calibrators):
            if calibrator is not None:
                arrays[f"x{index}"], arrays[f"y{index}"] = calibrator._x, calibrator._y
        buffer = io.BytesIO()
        # numpy's stub lets a **dict of arrays fill savez's allow_pickle: bool, and so refuses it.
        np.savez(buffer, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> MulticlassCBPE:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            header = json.loads(archive["header"].tobytes().decode())
            arrays = {key: archive[key] for key in archive.files if key != "header"}
        # An archive written before ``incomplete`` existed was fitted keeping the remainder.
        estimator = cls(header["classes"], header["metrics"], header["chunk_size"],
                        {name: tuple(pair) for name, pair in header["configured_thresholds"].items()},
                        header.get("incomplete", "keep"))
        estimator.thresholds = {name: tuple(pair) for name, pair in header["thresholds"].items()}
        estimator.calibrated = header["calibrated"]
        estimator._components = {name: [tuple(pair) for pair in pairs] for name, pairs in header["components"].items()}
        estimator._calibrators = []
        for index, calibrated in enumerate(estimator.calibrated):
            calibrator = None
            if calibrated:
                calibrator = IsotonicCalibrator()
                calibrator._x, calibrator._y = arrays[f"x{index}"], arrays[f"y{index}"]
            estimator._calibrators.append(calibrator)
        return estimator

    def _inputs(self, y_pred_proba, y_pred, y_true):
        if not self.thresholds:
            raise RuntimeError("fit the estimator on a reference first")
        scores = self._scores(y_pred_proba)
        predicted = _codes(list(y_pred), self.classes)
        labels = None if y_true is None else _codes(list(y_true), self.classes)
        if len(predicted) != len(scores) or (labels is not None and len(labels) != len(scores)):
            raise ValueError("y_pred_proba, y_pred and y_true must have the same length")
        return scores, predicted, labels

    def _estimate(self, scores, calibrated, predicted, labels) -> dict[str, MetricEstimate]:
        estimates = {}
        for name in self.metrics:
            present = ~np.isnan(scores).any(axis=1)
            if name != "roc_auc":
                present &= predicted != MISSING
            count = int(present.sum())
            value = self._estimate_value(name, scores[present], calibrated[present], predicted[present]) \
                if count else float("nan")
            error = self._sampling_error(name, count) if count else float("nan")
            lower, upper = self.thresholds[name]
            realized = None
            if labels is not None:
                known = (labels != MISSING) & (present if name == "roc_auc" else predicted != MISSING)
                realized = self._realized(name, labels[known], scores[known], predicted[known]) if known.any() \
                    else float("nan")
            estimates[name] = MetricEstimate(
                value=value, sampling_error=error,
                lower_confidence_bound=float(np.maximum(0.0, value - SAMPLING_ERROR_RANGE * error)),
                upper_confidence_bound=float(np.minimum(1.0, value + SAMPLING_ERROR_RANGE * error)),
                lower_threshold=lower, upper_threshold=upper,
                alert=bool((lower is not None and value < lower) or (upper is not None and value > upper)),
                realized=realized)
        return estimates

    def _estimate_value(self, name, scores, calibrated, predicted) -> float:
        if name == "accuracy":
            hit = predicted[:, None] == np.arange(len(self.classes))[None, :]
            return float(np.mean(np.max(hit * calibrated, axis=1)))
        if name == "roc_auc":
            return float(np.mean([estimate_roc_auc(calibrated[:, index], scores[:, index], None)
                                  for index in range(len(self.classes))]))
        binary = {"f1": estimate_f1, "precision": estimate_precision, "recall": estimate_recall,
                  "specificity": estimate_specificity}[name]
        return float(np.mean([binary(calibrated[:, index], None, (predicted == index).astype(float))
                              for index in range(len(self.classes))]))

    def _sampling_error(self, name: str, count: int) -> float:
        components = self._components[name]
        if name == "accuracy":
            return float(components[0][0] / np.sqrt(count))
        variances = [variance / (count * fraction) for variance, fraction in components]
        error = float(np.sqrt(np.sum(variances)) / len(variances))
        return error * AUROC_ERROR_FACTOR if name == "roc_auc" else error

    def _reference_components(self, name, labels, scores, predicted) -> list[tuple[float, float]]:
        if name == "accuracy":
            return [(float(np.std((labels == predicted).astype(int))), 1.0)]
        components = []
        for index in range(len(self.classes)):
            truth, positive = labels == index, predicted == index
            if name == "roc_auc":
                truth_values, raw = truth.astype(float), scores[:, index]
                if np.mean(truth_values) > 0.5:
                    truth_values, raw = np.abs(truth_values - 1), 1 - raw
                ordered = truth_values[np.argsort(raw)]
                positive_ranks = np.unique(ordered * np.arange(len(ordered)))[1:]
                ser = positive_ranks - np.arange(len(positive_ranks))
                positives = np.sum(ordered)
                components.append((float(np.var(ser / (len(ordered) - positives))), float(positives / len(ordered))))
                continue
            tp, fp, fn, tn = _class_counts(truth, positive)
            variance, fraction = {
                "f1": (_variance(tp, fn + fp), (tp + fn + fp) / len(labels)),
                "precision": (_variance(tp, fp), int(positive.sum()) / len(labels)),
                "recall": (_variance(tp, fn), int(truth.sum()) / len(labels)),
                "specificity": (_variance(tn, fp), (tn + fp) / len(labels)),
            }[name]
            components.append((variance, fraction))
        return components

    def _realized(self, name, labels, scores, predicted) -> float:
        if not len(labels):
            return float("nan")
        if name == "roc_auc":
            if len(np.unique(labels)) != len(self.classes) or (labels == OTHER).any():
                return float("nan")
            return float(np.mean([roc_auc(labels == index, scores[:, index]) for index in range(len(self.classes))]))
        if len(np.unique(labels)) <= 1 or len(np.unique(predicted)) <= 1:
            return float("nan")
        if name == "accuracy":
            return float(np.mean(labels == predicted))
        values = []
        for index in range(len(self.classes)):
            tp, fp, fn, tn = _class_counts(labels == index, predicted == index)
            values.append({
                "f1": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0,
                "precision": tp / (tp + fp) if tp + fp else 0.0,
                "recall": tp / (tp + fn) if tp + fn else 0.0,
                "specificity": tn / (tn + fp) if tn + fp else float("nan"),
            }[name])
        return float(np.mean(values))
