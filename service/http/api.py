"""The HTTP API (CONTRACT §3): ingest, metrics, model views, reports, references.

Routers for the other edges (CloudEvents, retraining triggers) live in their own modules
and are included by :func:`create_app`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from service import __version__, extras
from service.core.engine import TooManyModels
from service.core.events import INFRA_GAUGES, MAX_CLASS_SCORES, MAX_VERSION_CHARS, MODEL_NAME, Rejection
from service.core.features import MAX_NAME_CHARS, MAX_VALUE_CHARS
from service.core.model_state import ModelState
from service.ingest.tables import TableError, TooLarge, read_table
from service.integrations.evidently_report import ReportError, evidently_html
from service.runtime import Runtime

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


class ErrorBody(BaseModel):
    """Every 4xx and 503 answer: a reason, or FastAPI's list of request validation errors."""

    detail: str | list[dict[str, Any]]


_ERROR_MEANING = {
    400: "the body cannot be read", 401: "a valid Authorization: Bearer token is required",
    403: "the route is disabled (no token of its class configured) or the request is cross-site",
    404: "unknown model", 408: "the body did not arrive within server.body_timeout",
    409: "not possible in the model's current state", 413: "the body, or what it holds, exceeds a configured limit",
    415: "the Content-Type is not one the route reads", 422: "invalid parameters or body",
    501: "needs an extra that is not installed", 503: "busy or not ready; retry later",
}


_ERROR_SCHEMA = ErrorBody.model_json_schema()


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses, all JSON in the :class:`ErrorBody`
    shape (also on routes whose success is HTML or text)."""
    return {code: {"description": _ERROR_MEANING[code], "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
            for code in codes}


BEARER = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="The admin token (every route), the ingest token (ingest routes) or the "
                                "read token (reports, triggers); see docs/security.md.")


_MODEL = {"type": "string", "pattern": f"^{MODEL_NAME.pattern}$"}
ModelName = Annotated[str, Path(pattern=f"^{MODEL_NAME.pattern}$", description="the model's name")]
_TIMESTAMP = {"anyOf": [{"type": "string", "format": "date-time"},
                       {"type": "number", "minimum": 0, "exclusiveMaximum": 1e11}, {"type": "null"}],
              "description": "RFC 3339 or UNIX seconds; default: time of receipt"}
_IDENTIFIER = {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 256}, {"type": "integer"}]}
_VALUE = {"anyOf": [{"type": "string", "maxLength": MAX_VALUE_CHARS}, {"type": ["number", "boolean", "null"]}]}
_GAUGE = {"type": ["number", "null"], "minimum": 0}
EVENT_SCHEMA = {"oneOf": [
    {"title": "Prediction", "type": "object", "required": ["kind", "model"], "properties": {
        "kind": {"const": "prediction"}, "model": _MODEL, "timestamp": _TIMESTAMP,
        "model_version": {"anyOf": [{"type": "string", "maxLength": MAX_VERSION_CHARS}, {"type": "integer"}]},
        "id": {"anyOf": [_IDENTIFIER, {"type": "null"}]},
        "latency_ms": _GAUGE, "status": {"enum": ["ok", "error"]},
        "features": {"type": "object", "propertyNames": {"maxLength": MAX_NAME_CHARS}, "additionalProperties": _VALUE},
        "prediction": _VALUE, "score": {"type": ["number", "null"]},
        "segment": {"type": ["string", "null"], "maxLength": MAX_VALUE_CHARS},
        "scores": {"type": ["object", "null"], "maxProperties": MAX_CLASS_SCORES,
                   "propertyNames": {"maxLength": MAX_VALUE_CHARS}, "additionalProperties": {"type": "number"},
                   "description": "multiclass: class -> probability (numbers and booleans as JSON writes them)"}}},
    {"title": "Label", "type": "object", "required": ["kind", "model", "id", "label"], "properties": {
        "kind": {"const": "label"}, "model": _MODEL, "timestamp": _TIMESTAMP, "id": _IDENTIFIER,
        "label": {"anyOf": [{"type": "string", "maxLength": MAX_VALUE_CHARS}, {"type": ["number", "boolean"]}]}}},
    {"title": "Infra", "type": "object", "required": ["kind", "model"], "properties": {
        "kind": {"const": "infra"}, "model": _MODEL, "timestamp": _TIMESTAMP,
        "instance": {"type": "string", "minLength": 1, "maxLength": 256},
        **{gauge: _GAUGE for gauge in INFRA_GAUGES},
        "event": {"type": ["string", "null"], "minLength": 1, "maxLength": 64}}},
]}


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


def _check(presented: str | None, *accepted: str | None) -> bool:
    # Compared as bytes (compare_digest refuses non-ASCII str): the header's own bytes, which
    # Starlette decoded as latin-1, against the configured token's UTF-8.
    if presented is None:
        return False
    raw = presented.encode("latin-1")
    return any(t is not None and hmac.compare_digest(raw, t.encode()) for t in accepted)


def _presented(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return None if credentials is None else (credentials.credentials.strip() or None)


def _unauthorized(what: str) -> HTTPException:
    return HTTPException(401, f"a valid Authorization: Bearer {what} is required", {"WWW-Authenticate": "Bearer"})


def _open_mode(runtime: Runtime) -> bool:
    """No token configured at all: every route is open (start-up allows this on loopback only)."""
    return runtime.token is None and runtime.ingest_token is None and runtime.read_token is None


def require_admin(request: Request, credentials: HTTPAuthorizationCredentials | None = Security(BEARER)) -> None:
    """Mutating routes: the admin token. Once any token is configured they are never open."""
    runtime = runtime_of(request)
    if runtime.token is None:
        if _open_mode(runtime):
            return
        raise HTTPException(403, f"admin routes are disabled: no admin token is set "
                                 f"(environment variable {runtime.settings.auth.token_env})")
    if not _check(_presented(credentials), runtime.token):
        raise _unauthorized("admin token")


def require_read(request: Request, credentials: HTTPAuthorizationCredentials | None = Security(BEARER)) -> None:
    """Reports (raw feature values) and the trigger list: the read token or the admin token."""
    runtime = runtime_of(request)
    if runtime.read_token is None and runtime.token is None:
        if _open_mode(runtime):
            return
        raise HTTPException(403, f"read routes are disabled: neither a read token "
                                 f"({runtime.settings.auth.read_token_env}) nor an admin token is set")
    if not _check(_presented(credentials), runtime.read_token, runtime.token):
        raise _unauthorized("read token")


def require_ingest(request: Request, credentials: HTTPAuthorizationCredentials | None = Security(BEARER)) -> None:
    """Ingest routes: open unless an ingest token is set; then it (or the admin token) is required."""
    runtime = runtime_of(request)
    if runtime.ingest_token is not None and not _check(_presented(credentials), runtime.ingest_token, runtime.token):
        raise _unauthorized("ingest token")


def media_type(request: Request) -> str | None:
    """The request's Content-Type without parameters, lower case; None when absent."""
    declared = request.headers.get("content-type")
    return None if declared is None else declared.split(";")[0].strip().lower()


def _refuse_cross_site(request: Request) -> None:
    """A browser marks every cross-origin POST/PUT with Origin (and Sec-Fetch-Site); programs send
    neither. Refusing them keeps a web page from driving a driftline its visitor can reach."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise HTTPException(403, f"cross-site request refused (Sec-Fetch-Site: {site})")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
        raise HTTPException(403, "cross-origin request refused (Origin does not match Host)")


def body_types(*accepted: str) -> Callable[[Request], None]:
    """Dependency of a POST/PUT route: refuse cross-site browser requests, and any declared
    Content-Type but ``accepted`` (text/plain and form types included) with 415. A request
    without Content-Type is read as the route documents (programs, never a browser)."""
    def check_body_type(request: Request) -> None:
        _refuse_cross_site(request)
        declared = media_type(request)
        if declared is not None and declared not in accepted:
            raise HTTPException(415, f"Content-Type {declared or '(empty)'} is not accepted here; "
                                     f"send one of {', '.join(accepted)}")
    return check_body_type


JSON_TYPES = ("application/json", "application/x-ndjson", "application/ndjson", "application/jsonl")


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The body, or HTTP 413 as soon as it passes ``limit`` bytes (declared or streamed), or
    HTTP 408 when it has not all arrived within ``server.body_timeout``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _oversize(request, limit)
    timeout = runtime_of(request).settings.server.body_timeout
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _oversize(request, limit)
                chunks.append(chunk)
    except TimeoutError:
        raise HTTPException(408, f"the body did not arrive within server.body_timeout={timeout:g}s") from None
    return b"".join(chunks)


def _oversize(request: Request, limit: int) -> HTTPException:
    runtime_of(request).engine.reject([Rejection(0, "oversize", "body too large")])
    return HTTPException(413, f"body exceeds limits.max_body_bytes={limit}")


router = APIRouter()


@router.get("/healthz", tags=["health"])
def healthz() -> dict:
    return {"status": "ok", "version": __version__}


class Readiness(BaseModel):
    ready: bool
    reasons: list[str]


@router.get("/readyz", tags=["health"], response_model=Readiness,
            responses={503: {"model": Readiness, "description": "not ready, with the reasons"}})
def readyz(request: Request) -> JSONResponse:
    ready, reasons = runtime_of(request).ready()
    return JSONResponse({"ready": ready, "reasons": reasons}, status_code=200 if ready else 503)


@router.get("/metrics", tags=["health"], response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition"}})
def metrics(request: Request) -> Response:
    return Response(generate_latest(runtime_of(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.post("/v1/events", status_code=202, response_model=IngestResult, tags=["ingest"],
             dependencies=[Depends(require_ingest), Depends(body_types(*JSON_TYPES))],
             responses={400: {"model": IngestResult, "description": "every event was rejected"},
                        **errors(401, 403, 408, 413, 415)},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"anyOf": [EVENT_SCHEMA, {
                     "type": "array", "description": "events, each read as one event: an invalid element is "
                                                     "rejected alone, with its index and reason"}]}},
                 "application/x-ndjson": {"schema": {"type": "string", "description": "one event per line"}}}}})
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


@router.get("/v1/models/{model}/drift", tags=["models"], responses=errors(404, 409, 422))
def model_drift(request: Request, model: ModelName) -> dict:
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


@router.get("/v1/models/{model}/quality", tags=["models"], responses=errors(404, 409, 422))
def model_quality(request: Request, model: ModelName) -> dict:
    """Data quality of the current window against the reference: per feature the missing share
    (and the reference's), the out-of-range share (numerical) and the unseen share
    (categorical); the new and absent features; the thresholds of the ``data_quality``
    trigger signal (``models.<m>.quality``) and the figures above them."""
    engine = runtime_of(request).engine
    with engine.lock:
        state = _state(request, model)
        rule = state.config.quality
        if not rule.enabled:
            raise HTTPException(409, f"data quality is off for {model!r} (models.<model>.quality.enabled)")
        report = state.quality
        if report is None:
            raise HTTPException(409, f"no data quality evaluation for {model!r} yet: "
                                     f"reference {'collecting' if state.reference is None else 'ready'}, "
                                     f"{state.window_samples} prediction(s) in the window")
        body = report.to_dict()
        body["thresholds"] = rule.thresholds()
        body["breaches"] = [{"feature": feature, "check": check, "value": value}
                            for feature, check, value in report.breaches(**rule.thresholds())]
        body["reference"] = {"source": state.reference_source, "rows": state.reference_rows}
        return body


class ReportCache:
    """Evidently reports cost seconds to a minute of CPU each: at most one renders at a time,
    and a model's report is served again for ``ttl`` seconds. A request for the model being
    rendered waits for that render; one for another model gets None (the route answers 503)."""

    def __init__(self, ttl: float, max_entries: int = 8, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._lock = asyncio.Lock()
        self._rendering: str | None = None
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def _fresh(self, model: str) -> str | None:
        entry = self._entries.get(model)
        if entry is None or self.clock() - entry[0] > self.ttl:
            return None
        return entry[1]

    async def get(self, model: str, render: Callable[[], Awaitable[str]]) -> str | None:
        cached = self._fresh(model)
        if cached is not None:
            return cached
        if self._lock.locked() and self._rendering != model:
            return None
        async with self._lock:
            cached = self._fresh(model)  # rendered while this request waited
            if cached is not None:
                return cached
            self._rendering = model
            try:
                html = await render()
            finally:
                self._rendering = None
            self._entries[model] = (self.clock(), html)
            self._entries.move_to_end(model)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            return html


@router.get("/v1/models/{model}/report", response_class=HTMLResponse, tags=["models"],
            dependencies=[Depends(require_read)], responses=errors(401, 403, 404, 409, 422, 501, 503))
async def model_report(request: Request, model: ModelName) -> HTMLResponse:
    """Evidently's data drift report of the reference (sample) against the current window.
    It shows raw feature values: the read token (or the admin token) is required once any
    token is configured. Served from a cache for ``server.report_cache_ttl``. Needs the
    ``[report]`` extra: 501 without it."""
    if not extras.available("report"):
        raise HTTPException(501, str(extras.MissingExtra("report", "/report")))
    engine = runtime_of(request).engine
    with engine.lock:
        state = _state(request, model)
        if state.reference is None or state.window_samples == 0:
            raise HTTPException(409, f"{model!r} has no reference or no current window yet")

    async def render() -> str:
        with engine.lock:
            reference, current = state.reference_frame(), state.current_frame()
        return await run_in_threadpool(evidently_html, reference, current)

    try:
        html = await request.app.state.reports.get(model, render)
    except ReportError as exc:
        raise HTTPException(409, f"no report for {model!r}: {exc}") from None
    if html is None:
        raise HTTPException(503, "another report is being rendered; retry shortly", {"Retry-After": "5"})
    return HTMLResponse(html)


# Declared types decide the format; a body without one (or application/octet-stream) is sniffed.
REFERENCE_TYPES = {
    "text/csv": "csv", "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet", "application/x-parquet": "parquet", "application/parquet": "parquet",
    "application/x-ndjson": "jsonl", "application/jsonl": "jsonl", "application/json": "jsonl",
    "application/octet-stream": None,
}


@router.put("/v1/models/{model}/reference", response_model=ReferenceLoaded, tags=["models"],
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
        state = await run_in_threadpool(runtime.engine.set_reference, model, frame, "upload")
    except TooLarge as exc:
        raise HTTPException(413, f"{exc} (limits.max_reference_rows={limits.max_reference_rows}, "
                                 f"limits.max_reference_cells={limits.max_reference_cells})") from None
    except extras.MissingExtra as exc:
        raise HTTPException(501, str(exc)) from None
    except (TableError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None
    except TooManyModels as exc:
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
    app.state.reports = ReportCache(runtime.settings.server.report_cache_ttl)
    app.include_router(router)
    for extra in extra_routers or []:
        app.include_router(extra)
    return app
