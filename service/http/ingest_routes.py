"""``POST /v1/events`` (CONTRACT §3): prediction, label and infra events as JSON or NDJSON,
and the JSON Schema of an event that documents it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from service.core.events import INFRA_GAUGES, MAX_CLASS_SCORES, MAX_VERSION_CHARS, MODEL_NAME
from service.core.features import MAX_NAME_CHARS, MAX_VALUE_CHARS
from service.http.dependencies import JSON_TYPES, body_types, read_limited_body, require_ingest, runtime_of
from service.http.openapi import errors

__all__ = ["EVENT_SCHEMA", "EventError", "IngestResult", "router"]

MAX_ERRORS_RETURNED = 100


class EventError(BaseModel):
    index: int
    reason: str
    detail: str


class IngestResult(BaseModel):
    accepted: int
    rejected: int
    errors: list[EventError]


_MODEL = {"type": "string", "pattern": f"^{MODEL_NAME.pattern}$"}
_TIMESTAMP = {"anyOf": [{"type": "string", "format": "date-time"},
                       {"type": "number", "minimum": 0, "exclusiveMaximum": 1e11}, {"type": "null"}],
              "description": "RFC 3339 or UNIX seconds; default: time of receipt"}
_IDENTIFIER = {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 256}, {"type": "integer"}]}
_VALUE = {"anyOf": [{"type": "string", "maxLength": MAX_VALUE_CHARS}, {"type": ["number", "boolean", "null"]}]}
_GAUGE = {"type": ["number", "null"], "minimum": 0}
EVENT_SCHEMA: dict[str, Any] = {"oneOf": [
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

router = APIRouter()


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
