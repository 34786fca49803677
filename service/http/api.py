"""The HTTP API (CONTRACT §3): the FastAPI app and the routers it always serves.

Each router holds the routes of one resource (health, ingest, model views, reports,
references); the routers of the optional edges (CloudEvents, retraining, estimation,
segments) are passed in by :func:`service.server.build_app`. Authentication and body checks
are in :mod:`service.http.dependencies`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.concurrency import run_in_threadpool

from service import __version__
from service.http import health_routes, ingest_routes, model_routes, reference_routes, report_routes
from service.runtime import Runtime

__all__ = ["create_app"]

# In the order of the OpenAPI document.
ROUTERS = (health_routes.router, ingest_routes.router, model_routes.router, report_routes.router,
           reference_routes.router)


def create_app(runtime: Runtime, extra_routers: list[APIRouter] | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(runtime.start)
        try:
            yield
        finally:
            await run_in_threadpool(runtime.stop)

    app = FastAPI(title="driftline", version=__version__, lifespan=lifespan,
                  description="Monitoring and drift-triggered retraining for ML models in production.")
    app.state.runtime = runtime
    app.state.reports = report_routes.ReportCache(runtime.settings.server.report_cache_ttl)
    for router in (*ROUTERS, *(extra_routers or [])):
        app.include_router(router)
    return app
