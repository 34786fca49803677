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
  ``(lower, upper)`` pair; a chunk alerts when its estimate falls outside. The reference's
  last, incomplete chunk counts like the others (NannyML's ``incomplete='keep'``) unless
  ``incomplete="drop"`` leaves it out: a few rows' accuracy is 0 or 1, and one such chunk
  can widen the thresholds to (0, 1), where nothing ever alerts.

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
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from detectors.calibration import IsotonicCalibrator, needs_calibration
from detectors.cbpe_metrics import BINARY_DEFINITIONS, ExpectedCells, expected_cells

__all__ = [
    "BINARY_METRICS",
    "CBPE",
    "ChunkEstimate",
    "MetricEstimate",
    "chunk_slices",
]

BINARY_METRICS = ("roc_auc", "f1", "precision", "recall", "specificity", "accuracy")
# NannyML's SAMPLING_ERROR_RANGE and StandardDeviationThreshold's default multiplier.
SAMPLING_ERROR_RANGE = 3
STD_MULTIPLIER = 3
DEFAULT_CHUNK_COUNT = 10
# What becomes of the reference's last chunk when it is smaller than the others.
INCOMPLETE_CHOICES = ("keep", "drop")


def chunk_slices(length: int, chunk_size: int | None, incomplete: str = "keep") -> list[slice]:
    """Consecutive chunks of ``chunk_size`` rows and a last, smaller one for the remainder
    (``incomplete="drop"``: without it); without ``chunk_size``, ten chunks of
    ``length // 10`` rows and the remainder."""
    if incomplete not in INCOMPLETE_CHOICES:
        raise ValueError(f"incomplete must be one of {', '.join(INCOMPLETE_CHOICES)}, not {incomplete!r}")
    size = length // DEFAULT_CHUNK_COUNT if chunk_size is None else int(chunk_size)
    if size <= 0:
        raise ValueError(f"cannot cut {length} rows into chunks of {size} rows")
    end = length - length % size if incomplete == "drop" else length
    return [slice(start, min(start + size, length)) for start in range(0, end, size)]


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


def checked_configuration(metrics, known: Sequence[str], chunk_size, thresholds, incomplete: str = "keep"):
    """The metrics as a list and the configured thresholds as a dict, or a ValueError naming
    what is wrong."""
    if incomplete not in INCOMPLETE_CHOICES:
        raise ValueError(f"incomplete must be one of {', '.join(INCOMPLETE_CHOICES)}, not {incomplete!r}")
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
    incomplete : {"keep", "drop"}, default "keep"
        The reference's last chunk when it holds fewer than ``chunk_size`` rows (the
        remainder): "keep" counts it in the thresholds like any other chunk, as NannyML does
        (its ``SizeBasedChunker(incomplete='keep')``); "drop" leaves it out, so that a
        remainder of a few rows, whose metric is noise, cannot widen them. A reference
        without a complete chunk then has no computed thresholds (None: no alert).
        :meth:`estimate` keeps every chunk of the data it is given either way.

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
                 thresholds: Mapping[str, tuple[float | None, float | None]] | None = None,
                 incomplete: str = "keep"):
        metrics, thresholds = checked_configuration(metrics, BINARY_METRICS, chunk_size, thresholds, incomplete)
        self.metrics = metrics
        self.chunk_size = chunk_size
        self.incomplete = incomplete
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
        slices = chunk_slices(len(labels), self.chunk_size, self.incomplete)
        for name in self.metrics:
            metric = BINARY_DEFINITIONS[name]
            self._components[name] = metric.components(labels, scores, predicted)
            if name in self.configured_thresholds:
                self.thresholds[name] = self.configured_thresholds[name]
                continue
            realized = np.array([metric.realized(labels[part], scores[part], predicted[part]) for part in slices])
            self.thresholds[name] = standard_deviation_thresholds(realized)
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
        header = {"metrics": self.metrics, "chunk_size": self.chunk_size, "incomplete": self.incomplete,
                  "calibrated": self.calibrated,
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
        # An archive written before ``incomplete`` existed was fitted keeping the remainder.
        estimator = cls(header["metrics"], header["chunk_size"],
                        {name: tuple(pair) for name, pair in header["configured_thresholds"].items()},
                        header.get("incomplete", "keep"))
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
            metric = BINARY_DEFINITIONS[name]
            if metric.uses_predictions not in usable:
                present = scored & ~np.isnan(predicted) if metric.uses_predictions else scored
                count = int(present.sum())
                rows = (calibrated, raw, predicted) if count == len(raw) else \
                    (calibrated[present], raw[present], predicted[present])
                cells = expected_cells(rows[0], rows[2]) if count and metric.uses_predictions else None
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


def standard_deviation_thresholds(values: np.ndarray) -> tuple[float | None, float | None]:
    """NannyML's StandardDeviationThreshold over the reference chunks, within the metric's [0, 1]."""
    if not len(values) or np.isnan(values).all():
        return None, None
    mean, std = float(np.nanmean(values)), float(np.nanstd(values))
    lower, upper = mean - STD_MULTIPLIER * std, mean + STD_MULTIPLIER * std
    return (0.0 if lower <= 0 else lower), (1.0 if upper >= 1 else upper)
