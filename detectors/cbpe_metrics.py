"""CBPE's metrics for a binary classifier, as NannyML 0.13.1 computes them (see :mod:`detectors.cbpe`).

For each metric: its estimate from calibrated scores (the expected confusion matrix of a chunk,
or for ROC AUC the calibrated scores ranked by the raw ones), its realised value from labels
(sklearn's, with NannyML's NaN cases), and the reference components of its sampling error
(NannyML's ``sampling_error.binary_classification``). ``BINARY_DEFINITIONS`` names them.

>>> import numpy as np
>>> calibrated = np.array([0.9, 0.8, 0.3, 0.1])
>>> round(estimate_accuracy(calibrated, None, np.array([1, 1, 0, 0])), 6)
0.825
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from detectors.calibration import roc_auc

# --- estimates from calibrated scores (NannyML's estimate_* functions) ---

def ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator != 0 else 0.0


# The expected confusion matrix of a chunk: (tp, fp, fn, tn), sums of calibrated probabilities.
ExpectedCells = tuple[float, float, float, float]


def estimate_roc_auc(calibrated: np.ndarray, raw: np.ndarray, predicted: np.ndarray | None,
                      cells: ExpectedCells | None = None) -> float:
    order = np.argsort(raw)[::-1]
    calibrated = calibrated[order]
    with np.errstate(divide="ignore", invalid="ignore"):
        cumulative = np.cumsum(calibrated)
        tps = np.round(np.concatenate(([0.0], cumulative)), 5)
        fps = np.round(np.concatenate(([0.0], 1 + np.arange(len(calibrated)) - cumulative)), 5)
        tpr, fpr = tps / tps[-1], fps / fps[-1]
        return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def expected_cells(calibrated: np.ndarray, predicted: np.ndarray) -> ExpectedCells:
    positive = predicted == 1
    tp = float(np.sum(calibrated[positive]))
    fp = float(np.sum(1 - calibrated[positive]))
    fn = float(np.sum(calibrated[~positive]))
    tn = float(np.sum(1 - calibrated[~positive]))
    return tp, fp, fn, tn


# ``cells``: the expected confusion matrix when the caller has it already (one per chunk).
# ``raw``: unused by these, which read the calibrated scores only (multiclass passes None).
def estimate_f1(calibrated: np.ndarray, raw: np.ndarray | None, predicted: np.ndarray,
                 cells: ExpectedCells | None = None) -> float:
    tp, fp, fn, _ = cells or expected_cells(calibrated, predicted)
    return ratio(tp, tp + 0.5 * (fp + fn))


def estimate_precision(calibrated: np.ndarray, raw: np.ndarray | None, predicted: np.ndarray,
                        cells: ExpectedCells | None = None) -> float:
    tp, fp, _, _ = cells or expected_cells(calibrated, predicted)
    return ratio(tp, tp + fp)


def estimate_recall(calibrated: np.ndarray, raw: np.ndarray | None, predicted: np.ndarray,
                     cells: ExpectedCells | None = None) -> float:
    tp, _, fn, _ = cells or expected_cells(calibrated, predicted)
    return ratio(tp, tp + fn)


def estimate_specificity(calibrated: np.ndarray, raw: np.ndarray | None, predicted: np.ndarray,
                          cells: ExpectedCells | None = None) -> float:
    _, fp, _, tn = cells or expected_cells(calibrated, predicted)
    return ratio(tn, tn + fp)


def estimate_accuracy(calibrated: np.ndarray, raw: np.ndarray | None, predicted: np.ndarray,
                       cells: ExpectedCells | None = None) -> float:
    tp, _, _, tn = cells or expected_cells(calibrated, predicted)
    return (tp + tn) / len(predicted)


# --- realised metrics (sklearn's, with NannyML's NaN cases) ---

def realized_roc_auc(labels, raw, predicted) -> float:
    return roc_auc(labels, raw)


def counts(labels, predicted) -> tuple[int, int, int, int]:
    truth, positive = labels == 1, predicted == 1
    return (int(np.sum(truth & positive)), int(np.sum(~truth & positive)),
            int(np.sum(truth & ~positive)), int(np.sum(~truth & ~positive)))


def both_classes(labels, predicted) -> bool:
    return len(np.unique(labels)) > 1 and len(np.unique(predicted)) > 1


def realized_f1(labels, raw, predicted) -> float:
    tp, fp, fn, _ = counts(labels, predicted)
    return ratio(tp, tp + 0.5 * (fp + fn)) if both_classes(labels, predicted) else float("nan")


def realized_precision(labels, raw, predicted) -> float:
    tp, fp, _, _ = counts(labels, predicted)
    return ratio(tp, tp + fp) if both_classes(labels, predicted) else float("nan")


def realized_recall(labels, raw, predicted) -> float:
    tp, _, fn, _ = counts(labels, predicted)
    return ratio(tp, tp + fn) if both_classes(labels, predicted) else float("nan")


def realized_specificity(labels, raw, predicted) -> float:
    _, fp, _, tn = counts(labels, predicted)
    return tn / (tn + fp) if tn + fp else float("nan")


def realized_accuracy(labels, raw, predicted) -> float:
    return float(np.mean(labels == predicted))


# --- sampling error components from the reference (NannyML's sampling_error.binary_classification) ---

def auroc_components(labels, raw, predicted) -> tuple[float, float]:
    labels, raw = labels.astype(float), raw.astype(float)
    if np.mean(labels) > 0.5:
        labels, raw = np.abs(labels - 1), 1 - raw
    order = np.argsort(raw)  # NannyML's (unstable) order: tied scores keep its rank assignment
    labels = labels[order]
    positive_ranks = np.unique(labels * np.arange(len(labels)))[1:]
    ser = positive_ranks - np.arange(len(positive_ranks))
    positives = np.sum(labels)
    return float(np.std(ser / (len(labels) - positives))), float(positives / len(labels))


def component(values_one: int, values_zero: int) -> float:
    values = np.concatenate([np.ones(values_one), np.zeros(values_zero)])
    return float(np.std(values)) if len(values) else float("nan")


def f1_components(labels, raw, predicted) -> tuple[float, float]:
    tp, fp, fn, _ = counts(labels, predicted)
    relevant = tp + fp + fn
    if relevant == 0:
        return float("nan"), 0.0
    correcting_factor = relevant / ((fn + fp) * 0.5 + tp)
    return component(tp, fp + fn) * correcting_factor, relevant / len(labels)


def precision_components(labels, raw, predicted) -> tuple[float, float]:
    tp, fp, _, _ = counts(labels, predicted)
    return component(tp, fp), float(np.sum(predicted)) / len(labels)


def recall_components(labels, raw, predicted) -> tuple[float, float]:
    tp, _, fn, _ = counts(labels, predicted)
    return component(tp, fn), float(np.sum(labels)) / len(labels)


def specificity_components(labels, raw, predicted) -> tuple[float, float]:
    _, fp, _, tn = counts(labels, predicted)
    return component(tn, fp), (tn + fp) / len(labels)


def accuracy_components(labels, raw, predicted) -> tuple[float, float]:
    # NannyML's accuracy error is std / sqrt(n): a fraction of 1 in the shared formula.
    return float(np.std((labels.astype(int) == predicted.astype(int)).astype(int))), 1.0


class Estimate(Protocol):
    """A metric's estimate from calibrated and raw scores and predictions; ``cells`` is the
    chunk's expected confusion matrix where already computed (shared by the metrics)."""

    def __call__(self, calibrated: np.ndarray, raw: np.ndarray, predicted: np.ndarray,
                 cells: ExpectedCells | None = None) -> float: ...


@dataclass(frozen=True)
class MetricDefinition:
    estimate: Estimate
    realized: Callable[[np.ndarray, np.ndarray, np.ndarray], float]
    components: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[float, float]]
    uses_predictions: bool = True


BINARY_DEFINITIONS = {
    "roc_auc": MetricDefinition(estimate_roc_auc, realized_roc_auc, auroc_components, uses_predictions=False),
    "f1": MetricDefinition(estimate_f1, realized_f1, f1_components),
    "precision": MetricDefinition(estimate_precision, realized_precision, precision_components),
    "recall": MetricDefinition(estimate_recall, realized_recall, recall_components),
    "specificity": MetricDefinition(estimate_specificity, realized_specificity, specificity_components),
    "accuracy": MetricDefinition(estimate_accuracy, realized_accuracy, accuracy_components),
}
