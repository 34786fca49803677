"""``PUT /v1/models/{model}/reference`` (CONTRACT §3): upload a model's reference as CSV,
Parquet or JSON lines."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from service import extras
from service.core.engine import TooManyModels
from service.core.model_state import ModelState
from service.http.dependencies import body_types, media_type, read_limited_body, require_admin, runtime_of
from service.http.openapi import ModelName, errors
from service.ingest.tables import TableError, TooLarge, read_table

__all__ = ["REFERENCE_TYPES", "ReferenceLoaded", "router"]

router = APIRouter(tags=["models"])


class ReferenceLoaded(BaseModel):
    model: str
    rows: int
    features: dict[str, str]
    source: str


# Declared types decide the format; a body without one (or application/octet-stream) is sniffed.
REFERENCE_TYPES: dict[str, str | None] = {
    "text/csv": "csv", "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet", "application/x-parquet": "parquet", "application/parquet": "parquet",
    "application/x-ndjson": "jsonl", "application/jsonl": "jsonl", "application/json": "jsonl",
    "application/octet-stream": None,
}


def _loaded(state: ModelState) -> ReferenceLoaded:
    return ReferenceLoaded(model=state.name, rows=state.reference_rows, source=state.reference_source or "upload",
                           features={name: feature.kind for name, feature in state.features.items()})


@router.put("/v1/models/{model}/reference", response_model=ReferenceLoaded,
            dependencies=[Depends(require_admin), Depends(body_types(*REFERENCE_TYPES))],
            responses=errors(401, 403, 408, 409, 413, 415, 422, 501),
            openapi_extra={"requestBody": {"required": True, "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
                "application/x-ndjson": {"schema": {"type": "string"}}}}})
async def put_reference(request: Request, model: ModelName) -> ReferenceLoaded:
    """Upload a reference: CSV, Parquet or JSON lines, as its Content-Type says (sniffed when
    there is none, or it is application/octet-stream). Columns are features, except
    ``prediction`` and ``score`` (prediction drift) and ``label``, ``id``, ``timestamp``,
    ``model``, ``model_version`` (ignored)."""
    runtime = runtime_of(request)
    body = await read_limited_body(request, runtime.settings.limits.max_body_bytes)
    limits = runtime.settings.limits
    fmt = REFERENCE_TYPES.get(media_type(request) or "")
    try:
        frame = await run_in_threadpool(read_table, body, fmt, "reference", max_rows=limits.max_reference_rows,
                                        max_cells=limits.max_reference_cells)
        loaded = await run_in_threadpool(runtime.engine.set_reference, model, frame, "upload", _loaded)
    except TooLarge as exc:
        raise HTTPException(413, f"{exc} (limits.max_reference_rows={limits.max_reference_rows}, "
                                 f"limits.max_reference_cells={limits.max_reference_cells})") from None
    except extras.MissingExtra as exc:
        raise HTTPException(501, str(exc)) from None
    except (TableError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None
    except TooManyModels as exc:
        raise HTTPException(409, str(exc)) from None
    if loaded is None:  # set_reference returns what describe read, and was given one
        raise RuntimeError("the engine did not describe the reference it loaded")
    return loaded
