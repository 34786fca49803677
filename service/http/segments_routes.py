"""HTTP route of segments (CONTRACT §7): drift and performance per segment of a model."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from service.core.model_state import ModelState
from service.http.dependencies import read_model
from service.http.openapi import ModelName, errors

__all__ = ["router"]

router = APIRouter(tags=["models"])


@router.get("/v1/models/{model}/segments", responses=errors(404, 409, 422))
def model_segments(request: Request, model: ModelName) -> dict[str, Any]:
    """Drift and performance per segment (``models.<m>.segments``): per segment feature
    (``segment_by``), per segment (the reference's ``limits.max_segments`` most frequent
    values, the rest pooled as ``__other__``) its rows in the window at the last evaluation,
    its reference rows, its drift share, dataset drift and per-feature verdicts (the shape of
    ``/drift``), its performance over its joined labels of the label window and their count;
    and per segment feature the performance gap, the largest minus the smallest figure over
    the segments with at least ``triggers.performance.min_labels`` labels."""
    return read_model(request, model, _segments)


def _segments(state: ModelState) -> dict[str, Any]:
    if not state.config.segments:
        raise HTTPException(409, f"no segments are configured for {state.name!r} (models.<model>.segments)")
    if state.segments is None:
        raise HTTPException(409, f"no segments for {state.name!r} yet: reference "
                                 f"{'collecting' if state.reference is None else 'ready'}; a segment feature "
                                 "must be a feature of the reference")
    min_labels = state.config.triggers.performance.min_labels
    return {"model": state.name, "segment_by": state.segments.to_dict(min_labels),
            "min_labels": min_labels, "max_segments": state.limits.max_segments}
