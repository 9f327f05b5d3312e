"""The model server: OpenAI-compatible ``/v1`` over one base model and every succeeded job's adapter.

Run alone with ``skill-adapter serve-models`` (a GPU machine), or started by ``skill-adapter serve`` beside
the API, whose ``/v1`` forwards here. The base model loads in the background at start-up; ``/health`` says
when it is ready. Admission is bounded: beyond ``SKILL_ADAPTER_SERVING_QUEUE_SIZE`` requests in flight
(running or waiting) a request gets 429 with ``Retry-After`` at once, so a flood costs neither memory
nor a crash.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from skill_adapter.core.config import Settings
from skill_adapter.serving.catalog import Adapter, Catalog
from skill_adapter.serving.protocol import (
    OWNER_HEADER,
    ChatCompletionRequest,
    LoadLoraRequest,
    ServingError,
    UnloadLoraRequest,
    openai_error,
)

log = logging.getLogger(__name__)

READY_WAIT_SECONDS = 120.0  # a first request waits this long for the base model to load, then gets 503


class ModelServer:
    """The engine (loaded in a thread at start-up), the catalog, and admission control."""

    def __init__(self, settings: Settings, *, engine: Any = None) -> None:
        self.settings = settings
        self.catalog = Catalog(settings)
        self.engine: Any = engine
        self.ready = threading.Event()
        self.loading = threading.Lock()
        self.load_started = False
        self.load_error: str | None = None
        self.admitted = 0
        self.started = int(time.time())
        if engine is not None:
            self.ready.set()

    def start_loading(self) -> None:
        """Load the base model on a thread, once."""
        with self.loading:
            if self.load_started:
                return
            self.load_started = True
        threading.Thread(target=self.load_engine, name="load-base-model", daemon=True).start()

    def load_engine(self) -> None:
        from skill_adapter.serving.engine import Engine

        try:
            resolved = self.settings.base_model()
            self.engine = Engine(
                resolved.path,
                builtin=resolved.builtin,
                max_adapters=self.settings.max_loaded_adapters,
                trust_remote_code=self.settings.trust_remote_code,
            )
            log.info("model server ready: %s", resolved.path)
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("the base model could not be loaded")
        finally:
            self.ready.set()

    async def wait_ready(self) -> Any:
        self.start_loading()
        deadline = time.monotonic() + READY_WAIT_SECONDS
        while not self.ready.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if self.load_error is not None:
            raise ServingError(503, "model_load_failed", f"The base model failed to load: {self.load_error}")
        if self.engine is None:
            raise ServingError(503, "model_loading", "The base model is still loading; retry shortly", retry_after=10)
        return self.engine

    def health(self) -> dict[str, Any]:
        engine = self.engine
        status = "failed" if self.load_error else "ok" if engine is not None else "loading"
        if status == "loading" and not self.load_started:
            status = "idle"  # loads on the first request that needs the model
        return {
            "status": status,
            "base_model": self.catalog.base_name,
            "base_path": self.catalog.base_path,
            "error": self.load_error,
            "loaded_adapters": engine.loaded_names() if engine is not None else [],
            "max_loaded_adapters": self.settings.max_loaded_adapters,
            "in_flight": self.admitted,
            "generating": engine.active_requests if engine is not None else 0,
            "queue_size": self.settings.serving_queue_size,
        }

    def models(self, owner: str | None = None) -> dict[str, Any]:
        loaded = set(self.engine.loaded_names()) if self.engine is not None else set()
        data = [
            {
                "id": self.catalog.base_name,
                "object": "model",
                "created": self.started,
                "owned_by": "skill-adapter",
                "root": self.catalog.base_path,
                "parent": None,
                "loaded": self.engine is not None,
                "max_model_len": self.engine.context if self.engine is not None else self.settings.model_max_length(),
            }
        ]
        for adapter in self.catalog.adapters(owner):
            same = self.catalog.same_base(adapter)
            data.append(
                {
                    "id": adapter.id,
                    "object": "model",
                    "created": adapter.created,
                    "owned_by": "skill-adapter",
                    "root": str(adapter.path),
                    "parent": self.catalog.base_name if same else adapter.base,
                    "skill": adapter.skill_name,
                    "loaded": adapter.id in loaded,
                    "servable": same,
                }
            )
        return {"object": "list", "data": data}


def create_model_server(settings: Settings, *, engine: Any = None, preload: bool = True) -> FastAPI:
    """The model server's app. ``engine`` injects a ready engine; else the base model loads at start-up
    (``preload``) or on the first request that needs it."""
    server = ModelServer(settings, engine=engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if engine is None and preload:
            server.start_loading()
        yield

    app = FastAPI(title="Agent Skill Adapter model server", version="0.1.0", lifespan=lifespan)
    app.state.server = server

    @app.exception_handler(ServingError)
    async def _serving(request: Request, exc: ServingError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return openai_error(400, "invalid_json", "The request body is not valid JSON")
        first = errors[0] if errors else {}
        loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        parts = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}" for e in errors
        )
        return openai_error(400, "invalid_parameter", parts, param=loc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return openai_error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return openai_error(500, "internal_error", "An unexpected error occurred; see the model server's log.")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return server.health()

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        return await run_in_threadpool(server.models, request.headers.get(OWNER_HEADER))

    @app.post("/v1/load_lora_adapter")
    async def load_lora_adapter(body: LoadLoraRequest) -> Response:
        engine = await server.wait_ready()
        adapter = await run_in_threadpool(_admin_adapter, server, body.lora_name, body.lora_path)
        server.catalog.check_base(adapter)
        try:
            fresh = await run_in_threadpool(engine.load, adapter.id, str(adapter.path))
        except Exception as exc:
            from skill_adapter.serving.engine import engine_error

            raise engine_error(exc) from None
        if not fresh:
            return PlainTextResponse(f"Success: LoRA adapter '{adapter.id}' was already loaded.")
        return PlainTextResponse(f"Success: LoRA adapter '{adapter.id}' added successfully.")

    @app.post("/v1/unload_lora_adapter")
    async def unload_lora_adapter(body: UnloadLoraRequest) -> Response:
        engine = await server.wait_ready()
        adapter = await run_in_threadpool(server.catalog.resolve, body.lora_name, param="lora_name")
        if adapter is None:
            raise ServingError(400, "invalid_parameter", "The base model cannot be unloaded", param="lora_name")
        if not await run_in_threadpool(engine.unload, adapter.id):
            raise ServingError(
                404, "adapter_not_loaded", f"The LoRA adapter '{adapter.id}' is not loaded", param="lora_name"
            )
        return PlainTextResponse(f"Success: LoRA adapter '{adapter.id}' removed successfully.")

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        if server.admitted >= settings.serving_queue_size:
            raise ServingError(
                429,
                "too_many_requests",
                f"The model server has {server.admitted} requests in flight (its limit, "
                "SKILL_ADAPTER_SERVING_QUEUE_SIZE); retry after a few seconds",
                retry_after=2,
            )
        server.admitted += 1
        release = True
        try:
            engine = await server.wait_ready()
            prepared = await run_in_threadpool(_prepare, server, engine, body, request.headers.get(OWNER_HEADER))
            if body.stream:
                release = False  # the response releases its admission when it ends, however it ends

                def close() -> None:
                    prepared.generation.cancel.set()
                    server.admitted -= 1

                return _EventStream(
                    _stream(engine, body, prepared),
                    on_close=close,
                    media_type="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                )
            return JSONResponse(await _complete(engine, body, prepared, request))
        finally:
            if release:
                server.admitted -= 1

    return app


def _admin_adapter(server: ModelServer, name: str, path: str | None) -> Adapter:
    adapter = server.catalog.resolve(name, param="lora_name")
    if adapter is None:
        raise ServingError(400, "invalid_parameter", "The base model is always loaded", param="lora_name")
    if path is not None:
        given = Path(path).expanduser().resolve()
        if given != adapter.path.resolve():
            raise ServingError(
                400,
                "invalid_parameter",
                f"lora_path must be the adapter folder of {adapter.id} ({adapter.path}) or left out: this server "
                "only loads adapters its jobs wrote",
                param="lora_path",
            )
    return adapter


class Prepared:
    def __init__(self, model: str, generation: Any, prompt_tokens: int) -> None:
        self.model = model
        self.generation = generation
        self.prompt_tokens = prompt_tokens
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())


def _prepare(server: ModelServer, engine: Any, body: ChatCompletionRequest, owner: str | None = None) -> Prepared:
    """Resolve the model, render and measure the prompt, and load the adapter (may wait for the engine)."""
    from skill_adapter.evaluation.adapters import check_adapter_folder
    from skill_adapter.serving.engine import Generation, engine_error

    adapter = server.catalog.resolve(body.model, owner=owner)
    if adapter is not None:
        server.catalog.check_base(adapter)
    messages = []
    if body.with_skill:
        messages.append({"role": "system", "content": server.catalog.skill_text(body.with_skill, owner)})
    try:
        for message in body.messages:
            role = "system" if message.role == "developer" else message.role
            messages.append({"role": role, "content": message.text()})
    except ValueError as exc:
        raise ServingError(400, "invalid_parameter", f"messages: {exc}", param="messages") from None
    try:
        prompt_ids = engine.encode(messages)
    except Exception as exc:  # a template that refuses this conversation (roles out of order, say)
        raise ServingError(400, "invalid_messages", f"The chat template refused these messages: {exc}") from None
    room = engine.context - len(prompt_ids)
    wanted = body.limit()
    if room <= 0 or (wanted is not None and wanted > room):
        raise ServingError(
            400,
            "context_length_exceeded",
            f"This model's maximum context length is {engine.context} tokens. The messages take "
            f"{len(prompt_ids)} tokens and max_tokens asks for {wanted or 1} more.",
            param="messages" if room <= 0 else "max_tokens",
        )
    max_tokens = wanted or min(room, server.settings.serving_max_tokens)
    if adapter is not None:
        # Checked here, without waiting for the engine's lock (held while another request decodes), so a
        # missing or pickled adapter is a clear 4xx before any stream starts; it loads when its turn comes.
        try:
            check_adapter_folder(adapter.path)
        except Exception as exc:
            raise engine_error(exc) from None
    generation = Generation(
        prompt_ids=prompt_ids,
        adapter=(adapter.id, str(adapter.path)) if adapter is not None else None,
        max_tokens=max_tokens,
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        seed=body.seed,
        top_logprobs=(body.top_logprobs or 0) if body.logprobs else None,
        stops=body.stop_list(),
    )
    return Prepared(body.model, generation, len(prompt_ids))


_END = object()


def _start(engine: Any, prepared: Prepared) -> asyncio.Queue[Any]:
    """Run the generation on its own thread; its steps, then the finish reason (or an error), arrive in a queue."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def put(item: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def run() -> None:
        try:
            reason = engine.generate(prepared.generation, put)
            put((_END, reason))
        except Exception as exc:
            log.exception("generation failed")
            put((_END, exc))

    threading.Thread(target=run, name=f"generate-{prepared.id}", daemon=True).start()
    return queue


def _usage(prepared: Prepared, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prepared.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prepared.prompt_tokens + completion,
    }


async def _complete(engine: Any, body: ChatCompletionRequest, prepared: Prepared, request: Request) -> dict[str, Any]:
    queue = _start(engine, prepared)
    text, logprobs, tokens = [], [], 0
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=1.0)
            except TimeoutError:
                if await request.is_disconnected():
                    prepared.generation.cancel.set()
                    raise ServingError(499, "client_closed", "The client went away") from None
                continue
            if isinstance(item, tuple) and item[0] is _END:
                reason = item[1]
                break
            text.append(item.text)
            tokens += int(item.counts)
            if item.logprob is not None:
                logprobs.append(item.logprob)
    finally:
        prepared.generation.cancel.set()  # stop the thread if this coroutine was cancelled
    if isinstance(reason, Exception):
        from skill_adapter.serving.engine import AdapterLoadError, engine_error

        if isinstance(reason, AdapterLoadError):
            cause = reason.__cause__
            raise engine_error(cause if isinstance(cause, Exception) else reason)
        raise ServingError(500, "generation_failed", f"Generation failed: {type(reason).__name__}: {reason}")
    return {
        "id": prepared.id,
        "object": "chat.completion",
        "created": prepared.created,
        "model": prepared.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(text)},
                "logprobs": {"content": logprobs} if body.logprobs else None,
                "finish_reason": reason,
            }
        ],
        "usage": _usage(prepared, tokens),
    }


def _chunk(prepared: Prepared, delta: dict[str, Any], **choice: Any) -> str:
    data = {
        "id": prepared.id,
        "object": "chat.completion.chunk",
        "created": prepared.created,
        "model": prepared.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None, **choice}],
    }
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


class _EventStream(StreamingResponse):
    """A streaming response that runs ``on_close`` once it is over: sent, failed, or cut by the client
    (even before the stream's generator started, when its own ``finally`` would never run)."""

    def __init__(self, content: AsyncIterator[str], *, on_close: Any, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


async def _stream(engine: Any, body: ChatCompletionRequest, prepared: Prepared) -> AsyncIterator[str]:
    """Server-sent events as OpenAI sends them. A client that goes away cancels this generator, which stops
    the generation at its next token and releases the admission slot."""
    try:
        queue = _start(engine, prepared)
        yield _chunk(prepared, {"role": "assistant", "content": ""})
        tokens = 0
        while True:
            item = await queue.get()
            if isinstance(item, tuple) and item[0] is _END:
                reason = item[1]
                break
            tokens += int(item.counts)
            if not item.text and item.logprob is None:
                continue
            logprobs = {"content": [item.logprob]} if item.logprob is not None else None
            yield _chunk(prepared, {"content": item.text}, logprobs=logprobs)
        if isinstance(reason, Exception):
            error = {"message": f"Generation failed: {reason}", "type": "server_error", "code": "generation_failed"}
            yield f"data: {json.dumps({'error': error})}\n\n"
        else:
            yield _chunk(prepared, {}, finish_reason=reason)
            if body.stream_options is not None and body.stream_options.include_usage:
                usage = {
                    "id": prepared.id,
                    "object": "chat.completion.chunk",
                    "created": prepared.created,
                    "model": prepared.model,
                    "choices": [],
                    "usage": _usage(prepared, tokens),
                }
                yield f"data: {json.dumps(usage)}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        prepared.generation.cancel.set()
