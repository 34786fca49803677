"""Performance estimated without labels, window by window (``models.<m>.estimation``).

A model's :class:`WindowEstimator` is fitted once, when its reference is set, on the
reference's ``label``, ``score`` and ``prediction`` columns (NannyML's CBPE, see
:mod:`detectors.cbpe` and docs/estimation.md: calibration, sampling-error components, alert
thresholds from reference chunks of ``estimation.chunk`` rows, by default ``window.size``).
Each window evaluation then estimates the window's metrics from its scores and predictions
in one numpy pass: the window is one CBPE chunk.

Binary classifiers only: the score is the probability of ``labels.positive_class``, and a
label or prediction is positive when it equals that class. A reference whose labels hold
more than two classes is refused (events carry one ``score``, not one per class).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from detectors.cbpe import CBPE, MetricEstimate, chunk_slices
from detectors.cbpe_multiclass import MulticlassCBPE
from service.config import EstimationConfig

if TYPE_CHECKING:  # pandas is imported where a reference is read, not at start-up
    import pandas as pd

__all__ = ["LABEL", "WindowEstimate", "WindowEstimator"]

LABEL = "label"
SCORE, PREDICTION = "score", "prediction"
SCORES = "scores"  # an event's multiclass scores; the window's columns scores:<class index>
# The reference's last chunk, when smaller than estimation.chunk, is left out of the thresholds:
# kept (NannyML's default), a remainder of a few rows has an accuracy of 0 or 1 that widens
# them to (0, 1), and estimated_performance_drop could never fire.
REFERENCE_INCOMPLETE = "drop"


@dataclass(frozen=True)
class WindowEstimate:
    """A window's estimated metrics (the model's latest version names them)."""

    model_version: str
    samples: int
    metrics: dict[str, MetricEstimate]

    def drops(self) -> dict[str, float]:
        """The metrics estimated below their lower threshold: the ``estimated_performance_drop``
        signal. (An estimate above its upper threshold alerts too, but is no drop.)"""
        return {name: metric.value for name, metric in self.metrics.items()
                if metric.lower_threshold is not None and metric.value < metric.lower_threshold}

    def to_dict(self) -> dict[str, Any]:
        return {name: {key: _json_number(value) for key, value in vars(metric).items()}
                for name, metric in self.metrics.items()}


def _json_number(value):
    return None if isinstance(value, float) and math.isnan(value) else value


class WindowEstimator:
    """A CBPE fitted on a model's reference (binary, or multiclass for three classes or more),
    estimating one window at a time."""

    def __init__(self, cbpe: CBPE | MulticlassCBPE, reference_rows: int, fitted_for: str):
        self.cbpe = cbpe
        self.reference_rows = reference_rows  # labelled rows it was fitted on
        # The configuration it was fitted under: a restored estimator of another is refitted.
        self.fitted_for = fitted_for
        self.classes: list | None = cbpe.classes if isinstance(cbpe, MulticlassCBPE) else None
        # A multiclass event's ``scores`` keys: the classes as JSON writes them (2 -> "2").
        self._keys = None if self.classes is None else [class_key(value) for value in self.classes]

    @property
    def reference_columns(self) -> list[str]:
        """The reference's score columns of a multiclass estimator (not features)."""
        return [] if self.classes is None else [class_column(value) for value in self.classes]

    @property
    def window_columns(self) -> list[str]:
        """The window columns a multiclass estimator needs: one score per class."""
        return [] if self.classes is None else [f"{SCORES}:{index}" for index in range(len(self.classes))]

    def score_columns(self, class_scores: list | None, start: int, rows: int) -> dict[str, np.ndarray]:
        """The batch's rows from ``start`` as one float64 column per class (NaN: not sent)."""
        keys = self._keys
        if keys is None:
            raise ValueError("a binary estimator reads the window's score column, not score columns per class")
        if class_scores is None:
            matrix = np.full((len(keys), rows - start), np.nan)
        else:
            nan = math.nan
            matrix = np.array([[nan] * len(keys) if scores is None else [scores.get(key, nan) for key in keys]
                               for scores in class_scores[start:rows]], dtype=np.float64).reshape(-1, len(keys)).T
        return dict(zip(self.window_columns, matrix, strict=True))

    @classmethod
    def fit(cls, config: EstimationConfig, window_size: int, frame: pd.DataFrame,
            positive_class: Any) -> WindowEstimator:
        """Fit on a reference frame; ValueError naming what is missing or wrong."""
        import pandas as pd  # noqa: PLC0415 - see the TYPE_CHECKING import

        missing = [name for name in (LABEL, PREDICTION) if name not in frame.columns]
        if missing:
            raise ValueError(f"estimation needs the reference columns label, prediction and score "
                             f"(missing: {', '.join(missing)})")
        complete = frame[LABEL].notna() & frame[PREDICTION].notna()
        classes = set(frame[LABEL][complete].tolist())
        multiclass = len(classes) > 2
        scored = sorted(map(class_column, classes)) if multiclass else [SCORE]
        missing = [name for name in scored if name not in frame.columns]
        if missing:
            raise ValueError(f"estimation needs the reference columns label, prediction and score (multiclass: "
                             f"score_<class> for every class) (missing: {', '.join(missing)})")
        for name in scored:
            if not pd.api.types.is_numeric_dtype(frame[name]) or pd.api.types.is_bool_dtype(frame[name]):
                raise ValueError(f"reference column {name!r} must hold numbers (a probability)")
            complete &= frame[name].notna()
        labels = frame[LABEL][complete].tolist()
        predictions = frame[PREDICTION][complete].tolist()
        rows = len(labels)
        chunk = config.chunk or window_size
        if not rows:
            raise ValueError("estimation needs reference rows with a label, a score and a prediction; there are none")
        unconfigured = [name for name in config.metrics if name not in config.thresholds]
        if unconfigured and len(chunk_slices(rows, chunk, REFERENCE_INCOMPLETE)) < 2:
            raise ValueError(f"estimation needs at least two reference chunks of {chunk} labelled rows "
                             f"(estimation.chunk, default window.size) for its thresholds, complete ones (a "
                             f"last, smaller chunk is not counted); the reference has {rows}")
        thresholds: dict[str, tuple[float | None, float | None]] = dict(config.thresholds.items())
        key = fitted_for(config, window_size, positive_class)
        if multiclass:
            try:
                ordered = sorted(set(labels))
            except TypeError:
                raise ValueError("the reference labels mix strings and numbers; multiclass estimation needs "
                                 "classes of one kind") from None
            scores = frame[[class_column(value) for value in ordered]][complete].to_numpy(dtype=float)
            estimator = MulticlassCBPE(ordered, config.metrics, chunk_size=chunk, thresholds=thresholds,
                                       incomplete=REFERENCE_INCOMPLETE)
            return cls(estimator.fit(labels, scores, predictions), rows, key)
        if positive_class not in classes:
            raise ValueError(f"labels.positive_class {positive_class!r} is not among the reference labels "
                             f"({', '.join(map(repr, sorted(classes, key=repr)))})")
        y_true = np.fromiter((label == positive_class for label in labels), dtype=float, count=rows)
        y_pred = np.fromiter((value == positive_class for value in predictions), dtype=float, count=rows)
        cbpe = CBPE(config.metrics, chunk_size=chunk, thresholds=thresholds, incomplete=REFERENCE_INCOMPLETE)
        return cls(cbpe.fit(y_true, frame[SCORE][complete].to_numpy(dtype=float), y_pred), rows, key)

    def estimate(self, scores: np.ndarray, predicted, model_version: str) -> WindowEstimate:
        """The window's metrics. Binary: ``scores`` one column, ``predicted`` 1.0 (positive),
        0.0 or NaN (not sent); multiclass: ``scores`` one column per class (rows x classes),
        ``predicted`` the predicted classes (None: not sent)."""
        return WindowEstimate(model_version, len(scores), self.cbpe.estimate_chunk(scores, predicted))

    def to_bytes(self) -> bytes:
        """A JSON header line, then the fitted CBPE's own archive."""
        header = json.dumps({"reference_rows": self.reference_rows, "fitted_for": self.fitted_for,
                             "multiclass": self.classes is not None})
        return header.encode() + b"\n" + self.cbpe.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> WindowEstimator:
        line, _, archive = data.partition(b"\n")
        header = json.loads(line)
        kind = MulticlassCBPE if header.get("multiclass") else CBPE
        return cls(kind.from_bytes(archive), header["reference_rows"], header["fitted_for"])


def class_key(value: Any) -> str:
    """A class as a key of an event's ``scores`` mapping: strings as they are, numbers and
    booleans as JSON writes them (2 -> "2", True -> "true")."""
    return value if isinstance(value, str) else json.dumps(value)


def class_column(value: Any) -> str:
    """The reference column holding a class's score (multiclass): ``score_<class>``."""
    return f"{SCORE}_{class_key(value)}"


def fitted_for(config: EstimationConfig, window_size: int, positive_class: Any) -> str:
    """What a fitted estimator depends on besides the reference, as one comparable string.
    The reference chunking is part of it: an estimator in a checkpoint written before the
    remainder was dropped is not restored with thresholds that may be (0, 1)."""
    return json.dumps([config.model_dump(mode="json"), window_size, positive_class,
                       {"incomplete": REFERENCE_INCOMPLETE}], sort_keys=True)
