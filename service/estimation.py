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
from service.config import EstimationConfig

if TYPE_CHECKING:  # pandas is imported where a reference is read, not at start-up
    import pandas as pd

__all__ = ["LABEL", "WindowEstimate", "WindowEstimator"]

LABEL = "label"
SCORE, PREDICTION = "score", "prediction"


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
    """A binary CBPE fitted on a model's reference, estimating one window at a time."""

    def __init__(self, cbpe: CBPE, reference_rows: int, fitted_for: str):
        self.cbpe = cbpe
        self.reference_rows = reference_rows  # labelled rows it was fitted on
        # The configuration it was fitted under: a restored estimator of another is refitted.
        self.fitted_for = fitted_for

    @classmethod
    def fit(cls, config: EstimationConfig, window_size: int, frame: pd.DataFrame,
            positive_class: Any) -> "WindowEstimator":
        """Fit on a reference frame; ValueError naming what is missing or wrong."""
        import pandas as pd  # noqa: PLC0415 - see the TYPE_CHECKING import

        missing = [name for name in (LABEL, SCORE, PREDICTION) if name not in frame.columns]
        if missing:
            raise ValueError(f"estimation needs the reference columns label, score and prediction "
                             f"(missing: {', '.join(missing)})")
        if not pd.api.types.is_numeric_dtype(frame[SCORE]) or pd.api.types.is_bool_dtype(frame[SCORE]):
            raise ValueError("reference column 'score' must hold numbers (the probability of the positive class)")
        complete = frame[LABEL].notna() & frame[SCORE].notna() & frame[PREDICTION].notna()
        labels = frame[LABEL][complete].tolist()
        classes = set(labels)
        if len(classes) > 2:
            raise ValueError(f"estimation in the service is for binary classifiers; the reference labels hold "
                             f"{len(classes)} classes (use `driftline estimate` for multiclass scores)")
        chunk = config.chunk or window_size
        rows = len(labels)
        unconfigured = [name for name in config.metrics if name not in config.thresholds]
        if not rows:
            raise ValueError("estimation needs reference rows with a label, a score and a prediction; there are none")
        if unconfigured and len(chunk_slices(rows, chunk)) < 2:
            raise ValueError(f"estimation needs at least two reference chunks of {chunk} labelled rows "
                             f"(estimation.chunk, default window.size) for its thresholds; the reference has "
                             f"{rows}")
        y_true = np.fromiter((label == positive_class for label in labels), dtype=float, count=rows)
        y_pred = np.fromiter((value == positive_class for value in frame[PREDICTION][complete].tolist()),
                             dtype=float, count=rows)
        scores = frame[SCORE][complete].to_numpy(dtype=float)
        cbpe = CBPE(config.metrics, chunk_size=chunk,
                    thresholds={name: tuple(pair) for name, pair in config.thresholds.items()})
        return cls(cbpe.fit(y_true, scores, y_pred), rows, fitted_for(config, window_size, positive_class))

    def estimate(self, scores: np.ndarray, predicted: np.ndarray, model_version: str) -> WindowEstimate:
        """The window's metrics; ``predicted`` is 1.0 (positive), 0.0 or NaN (not sent)."""
        return WindowEstimate(model_version, len(scores), self.cbpe.estimate_chunk(scores, predicted))

    def to_bytes(self) -> bytes:
        """A JSON header line, then the fitted CBPE's own archive."""
        header = json.dumps({"reference_rows": self.reference_rows, "fitted_for": self.fitted_for})
        return header.encode() + b"\n" + self.cbpe.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> "WindowEstimator":
        line, _, archive = data.partition(b"\n")
        header = json.loads(line)
        return cls(CBPE.from_bytes(archive), header["reference_rows"], header["fitted_for"])


def fitted_for(config: EstimationConfig, window_size: int, positive_class: Any) -> str:
    """What a fitted estimator depends on besides the reference, as one comparable string."""
    return json.dumps([config.model_dump(mode="json"), window_size, positive_class], sort_keys=True)
