"""``POST /v1/cloudevents``: the HTTP route of the KServe/Seldon CloudEvents sink."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from service.http.dependencies import body_types, read_limited_body, require_ingest, runtime_of
from service.http.ingest_routes import MAX_ERRORS_RETURNED
from service.http.openapi import errors
from service.ingest.cloudevents import STRUCTURED
from service.ingest.sink import CloudEventsSink

__all__ = ["http_router"]


def http_router(sink: CloudEventsSink) -> APIRouter:
    """``POST /v1/cloudevents``: the sink URL to give KServe's or Seldon's ``logger.url``.
    Binary mode (attributes in ``ce-*`` headers) and structured mode (``application/cloudevents+json``)."""
    router = APIRouter()

    @router.post("/v1/cloudevents", status_code=202, tags=["ingest"],
                 dependencies=[Depends(require_ingest),
                               Depends(body_types("application/json", "application/cloudevents+json"))],
                 responses={400: {"description": "the event was rejected (reasons in errors)"},
                            **errors(401, 403, 408, 413, 415)},
                 openapi_extra={"requestBody": {"required": True, "content": {
                     "application/json": {"schema": {"type": "object"}},
                     STRUCTURED: {"schema": {"type": "object"}}}}})
    async def post_cloudevent(request: Request) -> JSONResponse:
        """One inference-logger CloudEvent (KServe or Seldon). 202 with the prediction events it
        completed (``accepted``; 0 while it waits for its other half), 400 when it is rejected."""
        body = await read_limited_body(request, runtime_of(request).settings.limits.max_body_bytes)
        decoded = await run_in_threadpool(sink.receive, request.headers.raw, body)  # off the event loop
        listed = [r.to_dict() for r in decoded.rejected[:MAX_ERRORS_RETURNED]]
        # The joiner opens with the sink, before the app serves requests; 0 should it be closed.
        pending = 0 if sink.joiner is None else len(sink.joiner)
        status = 400 if decoded.rejected and not decoded.accepted else 202
        return JSONResponse({"accepted": decoded.accepted, "rejected": len(decoded.rejected),
                             "errors": listed, "pending": pending}, status_code=status)

    return router
