"""Delayed ground truth: the store of predictions waiting for a label, and performance figures.

Labels arrive minutes to days after their prediction. :class:`PendingPredictions` keeps the
last ``max_pending`` predictions that carried an ``id`` for at most ``ttl`` seconds, in
insertion order, so eviction is O(1) from the front; a label is ``matched`` (joined and
removed), ``duplicate`` (its id was matched before) or ``unmatched`` (never seen, evicted
or expired). Both maps are bounded, so memory is too.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from detectors.calibration import roc_auc


@dataclass(slots=True)
class Joined:
    """Labels joined to their predictions in one batch, as parallel lists."""

    versions: list[str]
    y_true: list[Any]
    y_pred: list[Any]
    scores: list[float]
    delays: list[float]
    unmatched: int
    duplicate: int
    # The predictions' segment names (service.core.segments), None where a prediction has none.
    segments: list[tuple | None] = field(default_factory=list)


class PendingPredictions:
    def __init__(self, max_pending: int, ttl: float):
        self.max_pending = max_pending
        self.ttl = ttl
        # id -> (timestamp, model_version, prediction, score[, segment names])
        self._pending: OrderedDict[str, tuple] = OrderedDict()
        # ids matched recently, to tell a duplicate label from an unknown one
        self._matched: OrderedDict[str, None] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, ids: list[str], rows: Iterable[tuple]) -> None:
        self._pending.update(zip(ids, rows, strict=True))
        overflow = len(self._pending) - self.max_pending
        for _ in range(max(0, overflow)):
            self._pending.popitem(last=False)
        self.evicted += max(0, overflow)

    def expire(self, now: float) -> None:
        """Drop predictions older than ``ttl`` (event time) from the front."""
        horizon = now - self.ttl
        pending = self._pending
        while pending:
            key, row = next(iter(pending.items()))
            if row[0] >= horizon:
                break
            del pending[key]
            self.evicted += 1

    def join(self, labels: list) -> Joined:
        joined = Joined([], [], [], [], [], 0, 0)
        pending, matched = self._pending, self._matched
        for label in labels:
            ident = label.id
            row = pending.pop(ident, None)
            if row is None:
                if ident in matched:
                    joined.duplicate += 1
                else:
                    joined.unmatched += 1
                continue
            matched[ident] = None
            timestamp, version, prediction, score = row[:4]
            joined.segments.append(tuple(row[4]) if len(row) > 4 and row[4] is not None else None)
            joined.versions.append(version)
            joined.y_true.append(label.label)
            joined.y_pred.append(prediction)
            joined.scores.append(score)
            joined.delays.append(max(0.0, label.timestamp - timestamp))
        while len(matched) > self.max_pending:
            matched.popitem(last=False)
        return joined

    def to_bytes(self) -> bytes:
        # msgspec, not json: a full store (100,000 predictions) is encoded in ~50 ms rather than ~230 ms.
        return msgspec.json.encode({"ids": list(self._pending), "rows": list(self._pending.values()),
                                    "matched": list(self._matched)})

    def load_bytes(self, data: bytes) -> None:
        state = msgspec.json.decode(data)
        self._pending = OrderedDict(zip(state["ids"], map(tuple, state["rows"]), strict=True))
        self._matched = OrderedDict.fromkeys(state["matched"])


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray,
                           positive: float | None) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (binary: of ``positive``; else macro) and ROC AUC.

    ``y_true``/``y_pred`` are class codes; ``scores`` the positive-class probability or NaN.
    A binary figure the data does not define is absent, not 0: recall without a positive
    label, precision without a positive prediction, F1 without both, ROC AUC without both
    classes. Macro figures count a class's undefined figure as 0, as scikit-learn does.

    >>> m = classification_metrics(np.array([1, 0, 1, 1.]), np.array([1, 0, 0, 1.]), np.full(4, np.nan), 1.0)
    >>> round(m["accuracy"], 2), round(m["recall"], 3)
    (0.75, 0.667)
    >>> sorted(classification_metrics(np.array([0, 0.]), np.array([1, 0.]), np.full(2, np.nan), 1.0))
    ['accuracy', 'precision']
    """
    out = {"accuracy": float(np.mean(y_true == y_pred))}
    classes = np.unique(np.concatenate((y_true, y_pred)))
    binary = positive is not None and len(classes) <= 2 and positive in classes
    targets = [positive] if binary else list(classes)
    undefined = 0.0 if not binary else None
    precisions, recalls, f1s = [], [], []
    for cls in targets:
        tp = float(np.sum((y_pred == cls) & (y_true == cls)))
        predicted, actual = float(np.sum(y_pred == cls)), float(np.sum(y_true == cls))
        p = tp / predicted if predicted else undefined
        r = tp / actual if actual else undefined
        precisions.append(p)
        recalls.append(r)
        f1s.append(None if p is None or r is None else 2 * p * r / (p + r) if p + r else 0.0)
    for name, values in (("precision", precisions), ("recall", recalls), ("f1", f1s)):
        defined = [value for value in values if value is not None]
        if len(defined) == len(values):
            out[name] = float(np.mean(defined))
    if binary:
        has_score = ~np.isnan(scores)
        truth = y_true[has_score] == positive
        if has_score.any() and 0 < truth.sum() < truth.size:
            out["roc_auc"] = roc_auc(truth, scores[has_score])
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Mean absolute error and root mean squared error.

    >>> regression_metrics(np.array([1.0, 2.0]), np.array([2.0, 4.0]))
    {'mae': 1.5, 'rmse': 1.5811388300841898}
    """
    error = y_pred - y_true
    return {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error * error)))}
