"""CBPE on pandas DataFrames: ``estimate_performance`` fits on a labelled reference frame and
estimates every chunk of a current one, binary (``detectors.cbpe``) or multiclass
(``detectors.cbpe_multiclass``) by the shape of ``y_pred_proba``; ``driftline estimate`` is
this function on files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.cbpe import BINARY_METRICS, CBPE, ChunkEstimate
from detectors.cbpe_multiclass import MulticlassCBPE

__all__ = ["PerformanceEstimate", "estimate_performance"]


@dataclass(frozen=True)
class PerformanceEstimate:
    """:func:`estimate_performance`'s answer; ``to_dict()`` is ``driftline estimate --json``.
    ``calibrated`` is a bool (binary) or, per class, whether its scores are calibrated."""

    calibrated: bool | dict[str, bool]
    thresholds: dict[str, tuple[float | None, float | None]]
    chunks: list[ChunkEstimate]

    @property
    def alerts(self) -> dict[str, int]:
        """Per metric, how many chunks alert."""
        return {name: sum(chunk.metrics[name].alert for chunk in self.chunks) for name in self.thresholds}

    def to_dict(self) -> dict:
        return {
            "method": "cbpe",
            "calibrated": self.calibrated,
            "thresholds": {name: {"lower": lower, "upper": upper} for name, (lower, upper) in self.thresholds.items()},
            "alerts": self.alerts,
            "chunks": [chunk.to_dict() for chunk in self.chunks],
        }


def _column(frame, name: str, role: str) -> np.ndarray:
    if name not in frame.columns:
        raise ValueError(f"{role} data lacks column {name!r}")
    try:
        return frame[name].to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):
        raise ValueError(f"{role} column {name!r} must hold numbers (binary: 0/1 labels and predictions)") from None


def _classes_column(frame, name: str, role: str) -> list:
    if name not in frame.columns:
        raise ValueError(f"{role} data lacks column {name!r}")
    return frame[name].astype(object).where(frame[name].notna(), None).tolist()


def estimate_performance(
    reference_df,
    current_df,
    y_true: str = "label",
    y_pred: str = "prediction",
    y_pred_proba: str | Mapping[Any, str] = "score",
    metrics: Sequence[str] = BINARY_METRICS,
    chunk_size: int | None = None,
    thresholds: Mapping[str, tuple[float | None, float | None]] | None = None,
) -> PerformanceEstimate:
    """CBPE for two pandas DataFrames: fit on the labelled reference, estimate every chunk of
    the current data; where the current data has the ``y_true`` column too, each chunk also
    carries its realised metrics. Column defaults are driftline's reference columns.

    ``y_pred_proba`` names the score column of a binary classifier, or maps each class of a
    multiclass classifier to its score column (:class:`detectors.cbpe_multiclass.MulticlassCBPE`).

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(3)
    >>> score = rng.uniform(size=4000)
    >>> reference = pd.DataFrame({"score": score, "prediction": (score >= 0.5).astype(int),
    ...                           "label": (rng.uniform(size=4000) < score).astype(int)})
    >>> current = reference.assign(score=lambda frame: 0.3 + 0.4 * frame.score)
    >>> result = estimate_performance(reference, current, metrics=["accuracy"], chunk_size=1000)
    >>> result.alerts
    {'accuracy': 4}
    """
    labelled = y_true in current_df.columns
    if isinstance(y_pred_proba, str):
        estimator = CBPE(metrics, chunk_size=chunk_size, thresholds=thresholds)
        estimator.fit(_column(reference_df, y_true, "reference"), _column(reference_df, y_pred_proba, "reference"),
                      _column(reference_df, y_pred, "reference"))
        chunks = estimator.estimate(_column(current_df, y_pred_proba, "current"),
                                    _column(current_df, y_pred, "current"),
                                    _column(current_df, y_true, "current") if labelled else None)
        return PerformanceEstimate(estimator.calibrated, dict(estimator.thresholds), chunks)
    classes = list(y_pred_proba)
    multiclass = MulticlassCBPE(classes, metrics, chunk_size=chunk_size, thresholds=thresholds)

    def scores(frame, role):
        return np.column_stack([_column(frame, y_pred_proba[name], role) for name in classes])

    multiclass.fit(_classes_column(reference_df, y_true, "reference"), scores(reference_df, "reference"),
                   _classes_column(reference_df, y_pred, "reference"))
    chunks = multiclass.estimate(scores(current_df, "current"), _classes_column(current_df, y_pred, "current"),
                                 _classes_column(current_df, y_true, "current") if labelled else None)
    calibrated = {str(name): flag for name, flag in zip(multiclass.classes, multiclass.calibrated, strict=True)}
    return PerformanceEstimate(calibrated, dict(multiclass.thresholds), chunks)
