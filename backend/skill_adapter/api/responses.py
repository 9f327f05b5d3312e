"""Answers built from our own response models."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response
from pydantic import BaseModel


def model_response(model: BaseModel, *, status_code: int = 200) -> Response:
    """``model`` as the JSON answer, serialised on the endpoint's own thread.

    When a sync endpoint returns a plain value, FastAPI validates it against the route's ``response_model`` on
    a second trip through the thread pool; a model we have just built is valid already, and each trip waits for
    a free thread and then for the GIL (on a busy machine, milliseconds at the tail). Routes that return this
    keep ``response_model`` for the OpenAPI schema. The bytes are what FastAPI would send: the model's JSON.
    """
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


_DESCRIPTIONS = {
    400: "The body is not valid JSON (invalid_json), or the Host header names another server (host_not_allowed)",
    401: "An API key is required or the one sent is not valid (when the server has keys)",
    403: "Refused: skill_path outside the skills root, or a cross-site or foreign-host request",
    404: "No such job, evaluation or skill",
    409: "The job is in a state that does not allow this",
    413: "The body or the uploaded file is over its size limit (code payload_too_large)",
    429: "Too many active jobs or requests for this key; retry after Retry-After seconds",
    422: "A parameter or the skill is invalid; the body names the field or the line",
    503: "The database is unavailable; retry after Retry-After seconds",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route gives: each the ``{"error": {"code", "message"}}`` body."""
    from skill_adapter.schemas import ErrorResponse

    return {status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]} for status in statuses}
