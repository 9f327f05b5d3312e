"""``/v1``: the model server's OpenAI-compatible API, reached through the API (which never loads a model).

Requests are forwarded as they are; answers come back as they are, server-sent events included, chunk by
chunk. A client that goes away mid-stream closes the upstream stream, which stops the generation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from skill_adapter.api.deps import CallerDep
from skill_adapter.auth import Caller
from skill_adapter.serving.protocol import (
    OWNER_HEADER,
    ChatCompletion,
    ChatCompletionRequest,
    LoadLoraRequest,
    ModelList,
    UnloadLoraRequest,
    openai_error,
)

# Every status the model server (or this proxy) answers, in OpenAI's error shape.
V1_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed request, or prompt + max_tokens over the context"},
    403: {"description": "Load/unload without an admin key"},
    404: {"description": "Unknown model (model_not_found) or adapter not loaded"},
    409: {"description": "The adapter was trained on another base model"},
    413: {"description": "Request body too large"},
    422: {"description": "The adapter cannot be loaded (not safetensors, missing)"},
    429: {"description": "Too many requests in flight (Retry-After)"},
    503: {"description": "The model server is down, not configured, or still loading the base model (Retry-After)"},
}

router = APIRouter(prefix="/v1", tags=["openai"], responses=V1_ERRORS)

# The bodies are forwarded as they are (the model server validates them and answers in OpenAI's error shape),
# so the routes take no parsed body; the schema is still declared, from the model server's own models.
REQUEST_MODELS: tuple[type[BaseModel], ...] = (ChatCompletionRequest, LoadLoraRequest, UnloadLoraRequest)


def _body(model: type[BaseModel]) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def declare_request_models(app: FastAPI) -> None:
    """Add :data:`REQUEST_MODELS` (and the models they use) to the app's OpenAPI components."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain()
            _, defs = models_json_schema(
                [(model, "validation") for model in REQUEST_MODELS], ref_template="#/components/schemas/{model}"
            )
            found = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in defs.get("$defs", {}).items():
                found.setdefault(name, definition)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


MAX_BODY_BYTES = 4_000_000
PASSED_HEADERS = ("content-type", "retry-after", "cache-control")


def _client(app: FastAPI) -> Any:
    client = getattr(app.state, "model_server_client", None)
    if client is None:
        import httpx  # imported on first use: the API starts without it

        client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=5.0, read=600.0, write=30.0, pool=10.0),
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=32),
        )
        app.state.model_server_client = client
    return client


async def _forward(request: Request, path: str, caller: Caller) -> Response:
    import httpx

    url = getattr(request.app.state, "model_server_url", None)
    if not url:
        return openai_error(
            503,
            "model_server_not_configured",
            "No model server: start the API with `skill-adapter serve` (it starts one) or set "
            "SKILL_ADAPTER_MODEL_SERVER_URL to a running `skill-adapter serve-models`",
        )
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return openai_error(413, "payload_too_large", f"The request body is over {MAX_BODY_BYTES} bytes")
    client = _client(request.app)
    upstream = client.build_request(
        request.method,
        url.rstrip("/") + path,
        content=body,
        params=request.query_params,
        headers={
            "content-type": request.headers.get("content-type", "application/json"),
            # Whose adapters the caller may use (issue 15's owners); set here, never taken from the client.
            **({} if caller.admin else {OWNER_HEADER: caller.name or ""}),
        },
    )
    try:
        response = await client.send(upstream, stream=True)
    except httpx.TransportError as exc:
        return openai_error(
            503,
            "model_server_unavailable",
            f"The model server at {url} cannot be reached ({type(exc).__name__}); it may still be starting",
            retry_after=5,
        )
    headers = {k: v for k, v in response.headers.items() if k.lower() in PASSED_HEADERS}
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return StreamingResponse(_relay(response), status_code=response.status_code, headers=headers)
    try:
        content = await response.aread()
    finally:
        await response.aclose()
    return Response(content, status_code=response.status_code, headers=headers)


async def _relay(response: Any) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    finally:
        with anyio.CancelScope(shield=True):  # closing must happen even when the client's cancel got us here
            await response.aclose()


@router.get("/models", response_model=ModelList)
async def list_models(request: Request, caller: CallerDep) -> Response:
    """The base model and every succeeded adapter (``parent`` is its base; ``loaded`` marks loaded ones)."""
    return await _forward(request, "/v1/models", caller)


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {}}, "description": "JSON, or server-sent events with stream"}},
    openapi_extra=_body(ChatCompletionRequest),
)
async def chat_completions(request: Request, caller: CallerDep) -> Response:
    """OpenAI's chat completions; ``model`` is the base model's name, a job id or a skill name."""
    return await _forward(request, "/v1/chat/completions", caller)


@router.post("/load_lora_adapter", response_class=PlainTextResponse, openapi_extra=_body(LoadLoraRequest))
async def load_lora_adapter(request: Request, caller: CallerDep) -> Response:
    """vLLM's admin call: load an adapter now (``{"lora_name": job id or skill name}``)."""
    if not caller.admin:
        return openai_error(403, "admin_only", "Loading and unloading adapters needs an admin key")
    return await _forward(request, "/v1/load_lora_adapter", caller)


@router.post("/unload_lora_adapter", response_class=PlainTextResponse, openapi_extra=_body(UnloadLoraRequest))
async def unload_lora_adapter(request: Request, caller: CallerDep) -> Response:
    """vLLM's admin call: unload an adapter (``{"lora_name": ...}``)."""
    if not caller.admin:
        return openai_error(403, "admin_only", "Loading and unloading adapters needs an admin key")
    return await _forward(request, "/v1/unload_lora_adapter", caller)
