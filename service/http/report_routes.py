"""``GET /v1/models/{model}/report``: Evidently's HTML data drift report, rendered one at a
time and cached (the ``[report]`` extra)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from service import extras
from service.core.model_state import ModelState
from service.http.dependencies import read_model, require_read
from service.http.openapi import ModelName, errors
from service.integrations.evidently_report import ReportError, evidently_html

if TYPE_CHECKING:
    import pandas as pd  # an idle service has not loaded pandas (tests/test_serve_cli.py)

__all__ = ["ReportCache", "router"]

router = APIRouter(tags=["models"])


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


def _require_both(state: ModelState) -> None:
    if state.reference is None or state.window_samples == 0:
        raise HTTPException(409, f"{state.name!r} has no reference or no current window yet")


def _frames(state: ModelState) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reference (sample) and the current window, copied out under the engine's lock."""
    _require_both(state)
    return state.reference_frame(), state.current_frame()


@router.get("/v1/models/{model}/report", response_class=HTMLResponse,
            dependencies=[Depends(require_read)], responses=errors(401, 403, 404, 409, 422, 501, 503))
async def model_report(request: Request, model: ModelName) -> HTMLResponse:
    """Evidently's data drift report of the reference (sample) against the current window.
    It shows raw feature values: the read token (or the admin token) is required once any
    token is configured. Served from a cache for ``server.report_cache_ttl``. Needs the
    ``[report]`` extra: 501 without it."""
    if not extras.available("report"):
        raise HTTPException(501, str(extras.MissingExtra("report", "/report")))
    # Checked before waiting on the cache: an unknown model or an empty window answers at once.
    read_model(request, model, _require_both)

    async def render() -> str:
        reference, current = read_model(request, model, _frames)
        return await run_in_threadpool(evidently_html, reference, current)

    try:
        html = await request.app.state.reports.get(model, render)
    except ReportError as exc:
        raise HTTPException(409, f"no report for {model!r}: {exc}") from None
    if html is None:
        raise HTTPException(503, "another report is being rendered; retry shortly", {"Retry-After": "5"})
    return HTMLResponse(html)
