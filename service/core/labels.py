"""Delayed ground truth: the store of predictions waiting for a label, and performance figures.

Labels arrive minutes to days after their prediction. :class:`PendingPredictions` keeps the
last ``max_pending`` predictions that carried an ``id`` for at most ``ttl`` seconds, in
insertion order; a label is ``matched`` (joined and removed), ``duplicate`` (its id was
matched before) or ``unmatched`` (never seen, evicted or expired). Both maps are bounded,
so memory is too.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from itertools import chain, groupby, islice
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


@dataclass(slots=True)
class _Rows:
    """The columns of one added batch; row ``first + i`` is at index ``i``."""

    first: int
    timestamps: np.ndarray  # float64
    versions: list[str]
    predictions: list
    scores: np.ndarray  # float64
    segments: list | None  # segment names, None where a row has none; None: no row has any

    def __len__(self) -> int:
        return len(self.versions)


def _drop_keys(mapping: dict, keys: list) -> None:
    deque(map(mapping.__delitem__, keys), maxlen=0)  # in C: no Python step per key


class PendingPredictions:
    """Predictions waiting for their label, added and evicted a batch at a time.

    Rows are kept as the columns of the batch that brought them (:class:`_Rows`) and ``_index``
    maps each waiting id to its row number, oldest id first: adding a batch builds no tuple
    per row, and evicting the overflow deletes its ids in one step. Rows no longer indexed
    (joined, evicted, expired, or replaced by a newer prediction with the same id) stay in
    their batch until it has no indexed row left, or are compacted away once they are as many
    as the indexed ones, so memory stays within twice ``max_pending`` rows.
    """

    def __init__(self, max_pending: int, ttl: float):
        self.max_pending = max_pending
        self.ttl = ttl
        # id -> row number, in insertion order (a re-sent id keeps its place, with its new row)
        self._index: dict[str, int] = {}
        self._batches: list[_Rows] = []  # in row-number order
        self._firsts: list[int] = []  # each batch's first row number, for bisect
        self._next = 0  # the next row number
        self._stored = 0  # rows held in _batches, indexed or not
        # ids matched recently, to tell a duplicate label from an unknown one (oldest first)
        self._matched: dict[str, None] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._index)

    @property
    def rows_held(self) -> int:
        """Rows in memory, waiting or not yet released: at most about twice ``max_pending``."""
        return self._stored

    def add(self, ids: list[str], timestamps: np.ndarray, versions: list[str], predictions: list,
            scores: np.ndarray, segments: list | None = None) -> None:
        """Add a batch's predictions (parallel columns); the oldest beyond ``max_pending`` are evicted."""
        count = self._append(ids, timestamps, versions, predictions, scores, segments)
        index = self._index
        overflow = len(index) - self.max_pending
        if overflow > 0:
            _drop_keys(index, list(islice(index, overflow)))
            self.evicted += overflow
        if self._stored > 2 * len(index) + count:
            self._release()

    def _append(self, ids: list[str], timestamps: np.ndarray, versions: list[str], predictions: list,
                scores: np.ndarray, segments: list | None) -> int:
        """Index a batch's rows after the others; how many there were."""
        count = len(ids)
        if not count:
            return 0
        first = self._next
        rows = _Rows(first, np.array(timestamps, dtype=np.float64), versions, predictions,
                     np.array(scores, dtype=np.float64), segments)
        if not len(rows.timestamps) == len(versions) == len(predictions) == len(rows.scores) == count or \
                (segments is not None and len(segments) != count):
            raise ValueError("pending predictions: columns of different lengths")
        self._next += count
        self._batches.append(rows)
        self._firsts.append(first)
        self._stored += count
        self._index.update(zip(ids, range(first, first + count), strict=True))
        return count

    def expire(self, now: float) -> None:
        """Drop predictions older than ``ttl`` (event time) from the front."""
        horizon = now - self.ttl
        expired = []
        for key, number in self._index.items():
            rows = self._rows_of(number)
            if rows.timestamps.item(number - rows.first) >= horizon:
                break
            expired.append(key)
        _drop_keys(self._index, expired)
        self.evicted += len(expired)

    def join(self, labels: list) -> Joined:
        joined = Joined([], [], [], [], [], 0, 0)
        index, matched = self._index, self._matched
        for label in labels:
            ident = label.id
            number = index.pop(ident, None)
            if number is None:
                if ident in matched:
                    joined.duplicate += 1
                else:
                    joined.unmatched += 1
                continue
            matched[ident] = None
            rows = self._rows_of(number)
            at = number - rows.first
            segment = None if rows.segments is None else rows.segments[at]
            joined.segments.append(None if segment is None else tuple(segment))
            joined.versions.append(rows.versions[at])
            joined.y_true.append(label.label)
            joined.y_pred.append(rows.predictions[at])
            joined.scores.append(rows.scores.item(at))
            joined.delays.append(max(0.0, label.timestamp - rows.timestamps.item(at)))
        overflow = len(matched) - self.max_pending
        if overflow > 0:
            _drop_keys(matched, list(islice(matched, overflow)))
        return joined

    def items(self) -> list[tuple[str, tuple]]:
        """(id, (timestamp, model_version, prediction, score[, segment names])) in insertion order."""
        return list(zip(self._index, self._gather(self._numbers()), strict=True))

    def to_bytes(self) -> bytes:
        # msgspec, not json: a full store (100,000 predictions) is encoded in ~50 ms rather than ~230 ms.
        return msgspec.json.encode({"ids": list(self._index), "rows": self._gather(self._numbers()),
                                    "matched": list(self._matched)})

    def load_bytes(self, data: bytes) -> None:
        state = msgspec.json.decode(data)
        ids, rows = state["ids"], state["rows"]
        if len(ids) != len(rows):
            raise ValueError("pending predictions: a checkpoint with more ids than rows, or fewer")
        self._index, self._batches, self._firsts, self._stored = {}, [], [], 0
        self._matched = dict.fromkeys(state["matched"])
        self._append_rows(ids, rows)

    # -- rows ---------------------------------------------------------------------------

    def _numbers(self) -> np.ndarray:
        """The waiting ids' row numbers, in insertion order."""
        return np.fromiter(self._index.values(), dtype=np.int64, count=len(self._index))

    def _rows_of(self, number: int) -> _Rows:
        return self._batches[bisect_right(self._firsts, number) - 1]

    def _gather(self, numbers: np.ndarray) -> list[tuple]:
        """The rows with these numbers, as tuples, in this order."""
        if numbers.size > 1 and not (np.diff(numbers) > 0).all():  # a re-sent id keeps its place
            order = np.argsort(numbers, kind="stable")
            rows = self._gather_ascending(numbers[order])
            return list(map(rows.__getitem__, np.argsort(order, kind="stable").tolist()))
        return self._gather_ascending(numbers)

    def _gather_ascending(self, numbers: np.ndarray) -> list[tuple]:
        """The rows with these (ascending) numbers: a whole batch's columns where all its rows
        are wanted (the common case), else the wanted positions of each column."""
        firsts = np.asarray(self._firsts, dtype=np.int64)
        lengths = np.fromiter(map(len, self._batches), dtype=np.int64, count=len(self._batches))
        starts = np.searchsorted(numbers, firsts).tolist()
        stops = np.searchsorted(numbers, firsts + lengths).tolist()
        pieces = []
        for rows, start, stop in zip(self._batches, starts, stops, strict=True):
            if start == stop:
                continue
            if stop - start == len(rows):
                columns = [rows.timestamps.tolist(), rows.versions, rows.predictions, rows.scores.tolist()]
                if rows.segments is not None:
                    columns.append(rows.segments)
            else:
                at = numbers[start:stop] - rows.first
                positions = at.tolist()
                columns = [rows.timestamps[at].tolist(), list(map(rows.versions.__getitem__, positions)),
                           list(map(rows.predictions.__getitem__, positions)), rows.scores[at].tolist()]
                if rows.segments is not None:
                    columns.append(list(map(rows.segments.__getitem__, positions)))
            pieces.append(zip(*columns, strict=True))
        return list(chain.from_iterable(pieces))

    def _release(self) -> None:
        """Free the batches no indexed row is in; when the rest still hold as many unindexed
        rows as indexed ones, copy the indexed rows into one batch (renumbered, order kept)."""
        index = self._index
        numbers = self._numbers()
        firsts = np.asarray(self._firsts, dtype=np.int64)
        live = np.bincount(np.searchsorted(firsts, numbers, side="right") - 1, minlength=len(firsts))
        kept = [i for i, count in enumerate(live.tolist()) if count]
        self._batches = [self._batches[i] for i in kept]
        self._firsts = [self._firsts[i] for i in kept]
        self._stored = sum(map(len, self._batches))
        if self._stored <= 2 * len(index):
            return
        keys, order = list(index), np.argsort(numbers, kind="stable").tolist()
        rows = self._gather_ascending(numbers[order])
        self._index, self._batches, self._firsts, self._stored = {}, [], [], 0
        self._append_rows(list(map(keys.__getitem__, order)), rows)
        renumbered = self._index
        self._index = dict(zip(keys, map(renumbered.__getitem__, keys), strict=True))

    def _append_rows(self, ids: list[str], rows: list) -> None:
        """Append rows as tuples or lists (a checkpoint's): rows of four fields were added
        without segments, of five with; a batch per run of either."""
        start = 0
        for width, run in groupby(map(len, rows)):
            stop = start + sum(1 for _ in run)
            columns = list(zip(*rows[start:stop], strict=True))
            # A NaN score is written as null: float64 reads it back as NaN.
            self._append(ids[start:stop], np.array(columns[0], dtype=np.float64), list(columns[1]),
                         list(columns[2]), np.array(columns[3], dtype=np.float64),
                         list(columns[4]) if width > 4 else None)
            start = stop


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
