"""``/healthz``, ``/readyz`` and ``/metrics`` (CONTRACT §3): liveness, readiness, the scrape."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from service import __version__
from service.http.dependencies import runtime_of

__all__ = ["router"]

router = APIRouter(tags=["health"])


class Readiness(BaseModel):
    ready: bool
    reasons: list[str]


@router.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get("/readyz", response_model=Readiness,
            responses={503: {"model": Readiness, "description": "not ready, with the reasons"}})
def readyz(request: Request) -> JSONResponse:
    ready, reasons = runtime_of(request).ready()
    return JSONResponse({"ready": ready, "reasons": reasons}, status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition"}})
def metrics(request: Request) -> Response:
    return Response(generate_latest(runtime_of(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)
