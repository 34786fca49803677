"""OpenAPI pieces every router shares: the error answers' shape and meaning per status, and
the model path parameter."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel

from service.core.events import MODEL_NAME

__all__ = ["ErrorBody", "ModelName", "errors"]


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


ModelName = Annotated[str, Path(pattern=f"^{MODEL_NAME.pattern}$", description="the model's name")]
