"""The FastAPI application factory."""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response

from skill_adapter.api.deps import PROTECTED, KeyRing
from skill_adapter.api.edge import install_edge
from skill_adapter.api.errors import error_response, install_error_handlers
from skill_adapter.api.routes import evaluation, openai_compat, skills, system, training
from skill_adapter.core.config import Settings, load_settings
from skill_adapter.core.db import get_engine, init_db, session_factory
from skill_adapter.health import EmbeddedWorker
from skill_adapter.worker.supervisor import Enqueue, reap_expired, sweep_queued

log = logging.getLogger(__name__)

# The built dashboard (`cd frontend && npm ci && npm run build`) in a checkout of the repository.
DEFAULT_DASHBOARD_DIR = Path(__file__).resolve().parents[3] / "frontend" / "dist"


def dashboard_dir() -> Path:
    """Where the built dashboard is: ``SKILL_ADAPTER_DASHBOARD_DIR``, or ``frontend/dist`` of this checkout."""
    configured = os.environ.get("SKILL_ADAPTER_DASHBOARD_DIR", "").strip()
    return Path(configured).expanduser() if configured else DEFAULT_DASHBOARD_DIR


def mount_dashboard(app: FastAPI, dist: Path) -> bool:
    """Serve the built dashboard at ``/``: its files, and index.html for any other non-API path.

    Registered after the API routes, so ``/api/...``, ``/docs`` and ``/openapi.json`` keep theirs; an
    unknown ``/api/...`` path still answers the JSON 404. Does nothing when ``dist`` has no index.html.
    """
    root = dist.resolve()
    index = root / "index.html"
    if not index.is_file():
        return False

    @app.get("/{path:path}", include_in_schema=False)
    async def dashboard(path: str) -> Response:
        if path == "api" or path.startswith("api/"):
            return error_response(404, "not_found", "Not Found")
        if path:
            try:
                candidate = (root / path).resolve()
                found = candidate.is_relative_to(root) and candidate.is_file()
            except (OSError, ValueError):  # a name too long for the file system, a NUL byte: not a file of ours
                found = False
            if found:
                # Vite names built assets by content hash: they never change under the same name.
                immutable = candidate.parent.name == "assets"
                headers = {"Cache-Control": "public, max-age=31536000, immutable"} if immutable else None
                return FileResponse(candidate, headers=headers)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    return True


def _sweeper(settings: Settings, enqueue: Enqueue, stop: threading.Event) -> None:
    """Re-enqueue queued jobs whose message was lost and take back jobs whose worker died, periodically."""
    first = True
    while not stop.is_set():
        try:
            # At start-up every queued job is re-sent: a worker that died took its received message along.
            reap_expired(settings=settings, enqueue=enqueue)
            sweep_queued(settings=settings, enqueue=enqueue, older_than=0 if first else None)
            first = False
        except Exception as exc:  # the database or broker is down: try again next round
            log.warning("sweeper: %s", exc)
        stop.wait(settings.sweep_interval_seconds)


def freeze_startup_heap() -> None:
    """Keep the start-up heap (FastAPI, SQLAlchemy, pydantic, Celery...) out of the cyclic collector.

    Its full passes over that long-lived heap paused every request for 90-160 ms, which made /status's
    p99 under load. Called by ``serve`` once the app is built, not by tests that build many apps.
    """
    gc.collect()
    gc.freeze()


def run_server(app: FastAPI, *, host: str, port: int) -> None:
    """Serve a built app as ``skill-adapter serve`` does (``bench/status_bench.py`` runs its app through here too)."""
    import uvicorn

    from skill_adapter.api.connections import guarded_protocol

    settings: Settings | None = getattr(app.state, "settings", None)
    timeout = (
        settings.client_timeout_seconds
        if settings is not None
        else Settings.model_fields["client_timeout_seconds"].default
    )
    freeze_startup_heap()
    # Slow or stalled clients lose their connection: read deadlines for headers and body (api/connections.py),
    # and idle keep-alive connections close after 5 s (uvicorn's own timeout).
    uvicorn.run(app, host=host, port=port, log_level="info", http=guarded_protocol(timeout), timeout_keep_alive=5)


def create_app(
    settings: Settings | None = None,
    *,
    enqueue: Enqueue | None = None,
    run_sweeper: bool = True,
    dashboard: Path | None = None,
    embedded_worker: EmbeddedWorker | None = None,
    model_server_url: str | None = None,
) -> FastAPI:
    """Build the API. ``enqueue`` defaults to sending the job id to Celery by task name.

    ``dashboard`` is the built dashboard's folder (default: :func:`dashboard_dir`); it is served at ``/``
    when it exists. ``embedded_worker`` is the worker process ``serve`` started, which health reports on.
    ``model_server_url`` is where ``/v1`` forwards to (default: ``SKILL_ADAPTER_MODEL_SERVER_URL``).
    """
    settings = settings or load_settings()
    if enqueue is None:
        from skill_adapter.worker.queue import sender

        enqueue = sender(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        init_db(settings)
        app.state.keyring.load()  # now, so that the first requests make no trip to the thread pool for it
        stop = threading.Event()
        thread = None
        if run_sweeper:
            thread = threading.Thread(target=_sweeper, args=(settings, enqueue, stop), daemon=True)
            thread.start()
        yield
        stop.set()
        if thread is not None:
            thread.join(timeout=5)

    app = FastAPI(
        title="Agent Skill Adapter",
        summary="Turn a SKILL.md into a LoRA/QLoRA adapter.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = get_engine(settings)
    app.state.session_factory = session_factory(settings)
    app.state.enqueue = enqueue
    app.state.embedded_worker = embedded_worker
    app.state.model_server_url = model_server_url or settings.model_server_url
    app.state.keyring = KeyRing(app.state.session_factory, settings.keys_cache_seconds)
    install_error_handlers(app)
    install_edge(app, settings)
    # Every router but system's needs the caller (system guards /config itself; /health stays open).
    app.include_router(training.router, dependencies=PROTECTED)
    app.include_router(evaluation.router, dependencies=PROTECTED)
    app.include_router(system.router)
    app.include_router(skills.router, dependencies=PROTECTED)
    app.include_router(openai_compat.router, dependencies=PROTECTED)
    openai_compat.declare_request_models(app)
    mount_dashboard(app, dashboard or dashboard_dir())
    return app
