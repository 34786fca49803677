"""The model views (CONTRACT §3): ``GET /v1/models``, ``/v1/models/{model}/drift`` and
``/v1/models/{model}/quality``. Each reads the model through the engine's views: plain
data built under its lock."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from detectors import FeatureDrift
from service.core.model_state import ModelState
from service.http.dependencies import read_model, runtime_of
from service.http.openapi import ModelName, errors

__all__ = ["ModelSummary", "router"]

router = APIRouter(tags=["models"])


class ModelSummary(BaseModel):
    model: str
    model_version: str
    task: str | None
    reference: dict[str, Any]
    window: dict[str, Any]
    dataset_drift: bool | None
    drift_share: float | None
    prediction_drift: dict[str, Any] | None
    performance: dict[str, dict[str, float]]
    labels_pending: int


def _summary(state: ModelState) -> ModelSummary:
    report = state.report
    drifted = state.prediction_drift
    return ModelSummary(
        model=state.name, model_version=state.last_version, task=state.task,
        reference={"source": state.reference_source, "rows": state.reference_rows,
                   "collecting": state.reference is None, "collected": state.reference_rows_collected},
        window={"samples": state.window_samples, "size": state.config.window.size,
                "step": state.config.window.step, "evaluations": state.evaluations},
        dataset_drift=None if report is None else report.dataset_drift,
        drift_share=None if report is None else report.drift_share,
        prediction_drift=None if drifted is None else _feature_dict(drifted),
        performance=state.performance, labels_pending=len(state.pending))


def _feature_dict(result: FeatureDrift) -> dict[str, Any]:
    return {"type": result.type, "method": result.method, "score": result.score, "threshold": result.threshold,
            "drift": result.drift, "missing": result.missing}


def _not_evaluated(what: str, state: ModelState) -> HTTPException:
    return HTTPException(409, f"no {what} for {state.name!r} yet: "
                              f"reference {'collecting' if state.reference is None else 'ready'}, "
                              f"{state.window_samples} prediction(s) in the window")


@router.get("/v1/models", response_model=list[ModelSummary])
def list_models(request: Request) -> list[ModelSummary]:
    return list(runtime_of(request).engine.views(lambda _, state: _summary(state)).values())


def _drift(state: ModelState) -> dict[str, Any]:
    if state.report is None:
        raise _not_evaluated("drift evaluation", state)
    body = state.report.to_dict()
    drifted = state.prediction_drift
    body["prediction_drift"] = None if drifted is None else _feature_dict(drifted)
    body["reference"] = {"source": state.reference_source, "rows": state.reference_rows}
    body["window"] = {"samples": state.window_samples, "evaluations": state.evaluations}
    return body


@router.get("/v1/models/{model}/drift", responses=errors(404, 409, 422))
def model_drift(request: Request, model: ModelName) -> dict[str, Any]:
    """Per-feature method, score, threshold and verdict, and the dataset verdict (CONTRACT §5 shape),
    plus the prediction drift and where the reference came from."""
    return read_model(request, model, _drift)


def _quality(state: ModelState) -> dict[str, Any]:
    rule = state.config.quality
    if not rule.enabled:
        raise HTTPException(409, f"data quality is off for {state.name!r} (models.<model>.quality.enabled)")
    report = state.quality
    if report is None:
        raise _not_evaluated("data quality evaluation", state)
    body = report.to_dict()
    body["thresholds"] = rule.thresholds()
    body["breaches"] = [{"feature": feature, "check": check, "value": value}
                        for feature, check, value in report.breaches(**rule.thresholds())]
    body["reference"] = {"source": state.reference_source, "rows": state.reference_rows}
    return body


@router.get("/v1/models/{model}/quality", responses=errors(404, 409, 422))
def model_quality(request: Request, model: ModelName) -> dict[str, Any]:
    """Data quality of the current window against the reference: per feature the missing share
    (and the reference's), the out-of-range share (numerical) and the unseen share
    (categorical); the new and absent features; the thresholds of the ``data_quality``
    trigger signal (``models.<m>.quality``) and the figures above them."""
    return read_model(request, model, _quality)
