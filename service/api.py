"""The HTTP API (CONTRACT §3): ingest, metrics, model views, reports, references.

Routers for the other edges (CloudEvents, retraining triggers) live in their own modules
and are included by :func:`create_app`.
"""

from __future__ import annotations

import hmac
import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from service import __version__, extras
from service.events import MODEL_NAME, Rejection
from service.model_state import ModelState
from service.reports import evidently_html
from service.runtime import Runtime
from service.tables import TableError, TooLarge, read_table

log = logging.getLogger("driftline.api")
MAX_ERRORS_RETURNED = 100


class EventError(BaseModel):
    index: int
    reason: str
    detail: str


class IngestResult(BaseModel):
    accepted: int
    rejected: int
    errors: list[EventError]


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


class ReferenceLoaded(BaseModel):
    model: str
    rows: int
    features: dict[str, str]
    source: str


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _check(presented: str | None, *accepted: str | None) -> bool:
    # Compared as bytes (compare_digest refuses non-ASCII str): the header's own bytes, which
    # Starlette decoded as latin-1, against the configured token's UTF-8.
    if presented is None:
        return False
    raw = presented.encode("latin-1")
    return any(t is not None and hmac.compare_digest(raw, t.encode()) for t in accepted)


def require_admin(request: Request) -> None:
    """Mutating routes: the configured token, when one is set."""
    runtime = runtime_of(request)
    if runtime.token is not None and not _check(_bearer(request), runtime.token):
        raise HTTPException(401, "a valid Authorization: Bearer token is required", {"WWW-Authenticate": "Bearer"})


def require_ingest(request: Request) -> None:
    """Ingest routes: open unless an ingest token is set; then it (or the admin token) is required."""
    runtime = runtime_of(request)
    if runtime.ingest_token is not None and not _check(_bearer(request), runtime.ingest_token, runtime.token):
        raise HTTPException(401, "a valid Authorization: Bearer ingest token is required",
                            {"WWW-Authenticate": "Bearer"})


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The body, or HTTP 413 as soon as it passes ``limit`` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _oversize(request, limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _oversize(request, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _oversize(request: Request, limit: int) -> HTTPException:
    runtime_of(request).engine.reject([Rejection(0, "oversize", "body too large")])
    return HTTPException(413, f"body exceeds limits.max_body_bytes={limit}")


router = APIRouter()


@router.get("/healthz", tags=["health"])
def healthz() -> dict:
    return {"status": "ok", "version": __version__}


@router.get("/readyz", tags=["health"])
def readyz(request: Request) -> JSONResponse:
    ready, reasons = runtime_of(request).ready()
    return JSONResponse({"ready": ready, "reasons": reasons}, status_code=200 if ready else 503)


@router.get("/metrics", tags=["health"], response_class=Response)
def metrics(request: Request) -> Response:
    return Response(generate_latest(runtime_of(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.post("/v1/events", status_code=202, response_model=IngestResult, tags=["ingest"],
             dependencies=[Depends(require_ingest)],
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"type": "object"}},
                 "application/x-ndjson": {"schema": {"type": "string"}}}}})
async def post_events(request: Request) -> JSONResponse:
    """One event, a JSON array of events, or NDJSON. 202 when anything was accepted, 400 when
    every event was rejected; the body lists the first rejections with their reasons."""
    runtime = runtime_of(request)
    body = await read_limited_body(request, runtime.settings.limits.max_body_bytes)
    # Off the event loop: a drift evaluation, or the Kafka consumer holding the engine's lock,
    # must not stall /healthz and /metrics.
    decoded = await run_in_threadpool(runtime.engine.ingest_body, body)
    result = IngestResult(
        accepted=decoded.accepted, rejected=len(decoded.rejected),
        errors=[EventError(**r.to_dict()) for r in decoded.rejected[:MAX_ERRORS_RETURNED]])
    status = 400 if decoded.accepted == 0 and decoded.rejected else 202
    return JSONResponse(result.model_dump(), status_code=status)


def _state(request: Request, model: str) -> ModelState:
    state = runtime_of(request).engine.models.get(model)
    if state is None:
        raise HTTPException(404, f"model {model!r} has not been seen")
    return state


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


def _feature_dict(result) -> dict:
    return {"type": result.type, "method": result.method, "score": result.score, "threshold": result.threshold,
            "drift": result.drift, "missing": result.missing}


@router.get("/v1/models", response_model=list[ModelSummary], tags=["models"])
def list_models(request: Request) -> list[ModelSummary]:
    engine = runtime_of(request).engine
    with engine.lock:
        return [_summary(state) for state in engine.models.values()]


@router.get("/v1/models/{model}/drift", tags=["models"])
def model_drift(request: Request, model: str) -> dict:
    """Per-feature method, score, threshold and verdict, and the dataset verdict (CONTRACT §5 shape),
    plus the prediction drift and where the reference came from."""
    engine = runtime_of(request).engine
    with engine.lock:
        state = _state(request, model)
        if state.report is None:
            raise HTTPException(409, f"no drift evaluation for {model!r} yet: "
                                     f"reference {'collecting' if state.reference is None else 'ready'}, "
                                     f"{state.window_samples} prediction(s) in the window")
        body = state.report.to_dict()
        drifted = state.prediction_drift
        body["prediction_drift"] = None if drifted is None else _feature_dict(drifted)
        body["reference"] = {"source": state.reference_source, "rows": state.reference_rows}
        body["window"] = {"samples": state.window_samples, "evaluations": state.evaluations}
        return body


@router.get("/v1/models/{model}/report", response_class=HTMLResponse, tags=["models"])
async def model_report(request: Request, model: str) -> HTMLResponse:
    """Evidently's data drift report of the reference (sample) against the current window
    (needs the ``[report]`` extra: 501 without it)."""
    if not extras.available("report"):
        raise HTTPException(501, str(extras.MissingExtra("report", "/report")))
    engine = runtime_of(request).engine
    with engine.lock:
        state = _state(request, model)
        if state.reference is None or state.window_samples == 0:
            raise HTTPException(409, f"{model!r} has no reference or no current window yet")
        reference, current = state.reference_frame(), state.current_frame()
    html = await run_in_threadpool(evidently_html, reference, current)
    return HTMLResponse(html)


@router.put("/v1/models/{model}/reference", response_model=ReferenceLoaded, tags=["models"],
            dependencies=[Depends(require_admin)],
            openapi_extra={"requestBody": {"required": True, "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
                "application/x-ndjson": {"schema": {"type": "string"}}}}})
async def put_reference(request: Request, model: str) -> ReferenceLoaded:
    """Upload a reference (CSV, Parquet or JSON lines; sniffed, or from Content-Type).
    Columns are features, except ``prediction`` and ``score`` (prediction drift) and
    ``label``, ``id``, ``timestamp``, ``model``, ``model_version`` (ignored)."""
    runtime = runtime_of(request)
    if not MODEL_NAME.fullmatch(model):
        raise HTTPException(422, "model must match [A-Za-z0-9_.:-]{1,128}")
    body = await read_limited_body(request, runtime.settings.limits.max_body_bytes)
    limits = runtime.settings.limits
    try:
        frame = await run_in_threadpool(read_table, body, None, "reference", max_rows=limits.max_reference_rows,
                                        max_cells=limits.max_reference_cells)
        state = await run_in_threadpool(runtime.engine.set_reference, model, frame, "upload")
    except TooLarge as exc:
        raise HTTPException(413, f"{exc} (limits.max_reference_rows={limits.max_reference_rows}, "
                                 f"limits.max_reference_cells={limits.max_reference_cells})") from None
    except extras.MissingExtra as exc:
        raise HTTPException(501, str(exc)) from None
    except (TableError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None
    except OverflowError as exc:
        raise HTTPException(409, str(exc)) from None
    return ReferenceLoaded(model=model, rows=state.reference_rows, source="upload",
                           features={name: f.kind for name, f in state.features.items()})


def create_app(runtime: Runtime, extra_routers: list[APIRouter] | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(runtime.start)
        try:
            yield
        finally:
            await run_in_threadpool(runtime.stop)

    app = FastAPI(title="driftline", version=__version__, lifespan=lifespan,
                  description="Monitoring and drift-triggered retraining for ML models in production.")
    app.state.runtime = runtime
    app.include_router(router)
    for extra in extra_routers or []:
        app.include_router(extra)
    return app
