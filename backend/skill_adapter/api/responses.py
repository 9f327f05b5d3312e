"""Answers built from our own response models."""

from __future__ import annotations

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
