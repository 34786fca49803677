"""HTTP routes of retraining (CONTRACT §3): manual trigger, Alertmanager receiver, trigger list."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from service.core.events import MAX_VERSION_CHARS, MODEL_NAME
from service.http.dependencies import body_types, read_limited_body, require_admin, require_read, runtime_of
from service.http.openapi import ModelName, errors
from service.retrain.triggers import TriggerManager

STORE_RETRY_AFTER = 30  # seconds; a full disk is not freed in an instant


class RetrainRequest(BaseModel):
    note: str | None = Field(None, max_length=2000, description="free text carried in evidence.note")
    model_version: str | None = Field(None, max_length=MAX_VERSION_CHARS, description="default: the last version seen")


class AlertmanagerAlert(BaseModel):
    """The fields of an alert in Alertmanager's webhook payload that driftline reads."""

    status: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str | None = None
    generatorURL: str | None = None
    fingerprint: str | None = None


_ALERTS = TypeAdapter(list[AlertmanagerAlert])
_STATUS = TypeAdapter(str | None)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
    return f"alerts{where}: {error['msg']}" if where.startswith("[") else f"status: {error['msg']}"


def create_router(manager: TriggerManager) -> APIRouter:
    router = APIRouter(tags=["retraining"])

    @router.post("/v1/models/{model}/retrain", status_code=202,
                 dependencies=[Depends(require_admin), Depends(body_types("application/json"))],
                 responses=errors(401, 403, 404, 408, 413, 415, 422, 503),
                 openapi_extra={"requestBody": {"required": False, "content": {
                     "application/json": {"schema": RetrainRequest.model_json_schema()}}}})
    async def retrain(request: Request, model: ModelName) -> JSONResponse:
        """Start the model's retraining pipeline now (reason ``manual``; no cooldown applies,
        but it starts one). The optional JSON body carries ``note`` and ``model_version``."""
        runtime = runtime_of(request)
        if not runtime.engine.tracks(model) and (model == "default" or model not in runtime.settings.models):
            raise HTTPException(404, f"model {model!r} has not been seen and is not configured")
        body = await read_limited_body(request, 64 * 1024)
        try:
            options = RetrainRequest.model_validate_json(body) if body.strip() else RetrainRequest()
        except ValueError as exc:
            raise HTTPException(422, f"body: {exc}") from None
        outcome = await run_in_threadpool(manager.manual, model, options.note, options.model_version)
        if outcome.trigger is None:
            headers = {"Retry-After": str(STORE_RETRY_AFTER)} if outcome.unavailable else None
            raise HTTPException(503, outcome.suppressed or "trigger not raised", headers)
        return JSONResponse(outcome.to_dict(), status_code=202)

    # response_model given: the annotation's JSONResponse (the 503) is not the 200's shape.
    @router.post("/v1/alertmanager", response_model=dict[str, Any],
                 dependencies=[Depends(require_admin), Depends(body_types("application/json"))],
                 responses={**errors(400, 401, 403, 408, 413, 415, 422), 503: {
                     "description": "the trigger store cannot write (disk full); Alertmanager resends later",
                     "content": {"application/json": {"schema": {"type": "object"}}}}},
                 openapi_extra={"requestBody": {"required": True, "content": {
                     "application/json": {"schema": {"type": "object", "required": ["alerts"], "properties": {
                         "version": {"enum": ["4", 4]}, "status": {"type": ["string", "null"]},
                         "alerts": {"type": "array", "items": _ALERTS.json_schema()["items"]}},
                         "$defs": _ALERTS.json_schema().get("$defs", {})}}}}})
    async def alertmanager(request: Request) -> dict[str, Any] | JSONResponse:
        """Alertmanager's webhook (payload version 4): each *firing* alert labelled
        ``<alertmanager.action_label>=<action_value>`` (default ``driftline_action="retrain"``)
        becomes a trigger (reason ``alert``) for the model in its ``model`` label, once per
        alert (fingerprint and startsAt); resolved alerts and repeats are ignored."""
        runtime = runtime_of(request)
        body = await read_limited_body(request, runtime.settings.limits.max_body_bytes)
        try:
            # orjson, not json: it refuses nesting past 1,024 levels where json overflows the stack.
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise HTTPException(400, f"body is not JSON: {exc}") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
            raise HTTPException(422, "not an Alertmanager webhook payload (an object with an alerts list)")
        version = payload.get("version", "4")
        if isinstance(version, bool) or version not in ("4", 4):
            raise HTTPException(422, f"Alertmanager webhook payload version {version!r} is not supported (4 is)")
        limit = runtime.settings.alertmanager.max_alerts
        if len(payload["alerts"]) > limit:
            raise HTTPException(413, f"{len(payload['alerts'])} alerts exceed alertmanager.max_alerts={limit}")
        try:
            _ALERTS.validate_python(payload["alerts"])
            _STATUS.validate_python(payload.get("status"))
        except ValidationError as exc:
            raise HTTPException(422, f"not an Alertmanager webhook payload: {_first_error(exc)}") from None
        result = await run_in_threadpool(manager.alertmanager, payload)
        if result.pop("unavailable"):
            # Alertmanager sends the notification again on a 5xx; alerts already taken are then duplicates.
            return JSONResponse(result, status_code=503, headers={"Retry-After": str(STORE_RETRY_AFTER)})
        return result

    @router.get("/v1/triggers", dependencies=[Depends(require_read)], responses=errors(401, 403, 422))
    def triggers(limit: int = Query(50, ge=1, le=1000),
                 model: str | None = Query(None, pattern=f"^{MODEL_NAME.pattern}$")) -> dict[str, Any]:
        """The most recent triggers, newest first, with their payload, delivery state
        (``pending``, ``delivered``, ``failed``, ``not_sent`` when no webhook is configured)
        and MLflow run. Needs the read token (or the admin token) once any token is configured."""
        return {"triggers": manager.recent(limit, model)}

    return router
