"""What every router of the HTTP edge shares: the runtime of a request, the bearer-token
checks, the body checks (Content-Type, cross-site, size and arrival time) and the lookup of
a model through the engine's views (404 for one not tracked)."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from typing import Annotated, TypeVar, cast
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.core.events import Rejection
from service.core.model_state import ModelState
from service.runtime import Runtime

__all__ = ["BEARER", "JSON_TYPES", "body_types", "media_type", "read_limited_body", "read_model", "require_admin",
           "require_ingest", "require_read", "runtime_of"]

T = TypeVar("T")

BEARER = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="The admin token (every route), the ingest token (ingest routes) or the "
                                "read token (reports, triggers); see docs/security.md.")

# The Authorization header's bearer token, None when absent (auto_error=False: the checks decide).
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]

JSON_TYPES = ("application/json", "application/x-ndjson", "application/ndjson", "application/jsonl")


def runtime_of(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


def read_model(request: Request, model: str, read: Callable[[ModelState], T]) -> T:
    """``read(state)`` of the model under the engine's lock (see ``Engine.view``); HTTP 404 for a
    model not tracked. ``read`` returns plain data, and may raise HTTPException (a 409)."""
    # Wrapped in a 1-tuple: None from view means "not tracked" even when ``read`` returns None.
    found = runtime_of(request).engine.view(model, lambda state: (read(state),))
    if found is None:
        raise HTTPException(404, f"model {model!r} has not been seen")
    return found[0]


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


def require_admin(request: Request, credentials: Credentials) -> None:
    """Mutating routes: the admin token. Once any token is configured they are never open."""
    runtime = runtime_of(request)
    if runtime.token is None:
        if _open_mode(runtime):
            return
        raise HTTPException(403, f"admin routes are disabled: no admin token is set "
                                 f"(environment variable {runtime.settings.auth.token_env})")
    if not _check(_presented(credentials), runtime.token):
        raise _unauthorized("admin token")


def require_read(request: Request, credentials: Credentials) -> None:
    """Reports (raw feature values) and the trigger list: the read token or the admin token."""
    runtime = runtime_of(request)
    if runtime.read_token is None and runtime.token is None:
        if _open_mode(runtime):
            return
        raise HTTPException(403, f"read routes are disabled: neither a read token "
                                 f"({runtime.settings.auth.read_token_env}) nor an admin token is set")
    if not _check(_presented(credentials), runtime.read_token, runtime.token):
        raise _unauthorized("read token")


def require_ingest(request: Request, credentials: Credentials) -> None:
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


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The body, or HTTP 413 as soon as it passes ``limit`` bytes (declared or streamed), or
    HTTP 408 when it has not all arrived within ``server.body_timeout``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _oversize(request, limit)
    timeout = runtime_of(request).settings.server.body_timeout
    chunks: list[bytes] = []
    size = 0
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
