"""HTTP route of estimated performance (CONTRACT §7): ``GET /v1/models/{model}/estimated``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from service.core.model_state import TIMESTAMP_COLUMN, ModelState
from service.http.dependencies import read_model
from service.http.openapi import ModelName, errors
from service.retrain.payload import rfc3339

__all__ = ["EstimatedPerformance", "router"]


class MetricFigures(BaseModel):
    value: float | None
    sampling_error: float | None
    lower_confidence_bound: float | None
    upper_confidence_bound: float | None
    lower_threshold: float | None
    upper_threshold: float | None
    alert: bool
    drop: bool  # below the lower threshold: the estimated_performance_drop signal
    realized: float | None  # over the window of joined labels of model_version, once labels are in


class EstimatedPerformance(BaseModel):
    model: str
    model_version: str
    method: str
    calibrated: bool | list[bool]  # binary; multiclass: per class, in the order of ``classes``
    classes: list[Any] | None  # multiclass: the classes (metrics are their macro averages)
    window: dict[str, Any]
    labels_in_window: int
    metrics: dict[str, MetricFigures]
    reference: dict[str, Any]


router = APIRouter(tags=["models"])


@router.get("/v1/models/{model}/estimated", response_model=EstimatedPerformance, responses=errors(404, 409, 422))
def model_estimated(request: Request, model: ModelName) -> EstimatedPerformance:
    """The last window's performance estimated without labels (CBPE, ``models.<m>.estimation``):
    per metric the estimate, its sampling error and confidence bounds, the alert thresholds,
    whether it alerts (outside the thresholds) and drops (below the lower one), and the
    realised figure of the labels joined so far. 409 while estimation is off, the reference
    has no labels to fit it on, or no window has been evaluated."""
    return read_model(request, model, _estimated)


def _estimated(state: ModelState) -> EstimatedPerformance:
    model = state.name
    estimation = state.config.estimation
    if estimation is None:
        raise HTTPException(409, f"estimation is off for {model!r} (models.<model>.estimation)")
    estimator = state.estimator
    if estimator is None:
        raise HTTPException(409, f"no estimator for {model!r}: it is fitted on a reference with label, score and "
                                 f"prediction columns (file, upload or MLflow); reference: "
                                 f"{state.reference_source or 'collecting'}")
    estimate = state.estimate
    if estimate is None:
        raise HTTPException(409, f"no window of {model!r} estimated yet: {state.window_samples} prediction(s) "
                                 f"in the window, every {state.config.window.step} evaluated")
    realized = state.performance.get(estimate.model_version, {})
    ring = state.label_windows.get(estimate.model_version)
    drops = estimate.drops()
    metrics = {name: MetricFigures(**{**figures, "realized": realized.get(name)}, drop=name in drops)
               for name, figures in estimate.to_dict().items()}
    window: dict[str, Any] = {"samples": estimate.samples, "size": state.config.window.size, "start": None, "end": None}
    if state.window is not None and state.window.count:
        stamps = state.window.column(TIMESTAMP_COLUMN)
        window["start"], window["end"] = rfc3339(float(stamps.min())), rfc3339(float(stamps.max()))
    return EstimatedPerformance(
        model=model, model_version=estimate.model_version, method=estimation.method,
        calibrated=estimator.cbpe.calibrated, classes=estimator.classes, window=window,
        labels_in_window=ring.count if ring else 0, metrics=metrics,
        reference={"source": state.reference_source, "rows": state.reference_rows,
                   "labelled_rows": estimator.reference_rows, "chunk": estimator.cbpe.chunk_size})
