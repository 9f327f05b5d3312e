"""The FastAPI application factory."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from skill_adapter.api.errors import install_error_handlers
from skill_adapter.api.routes import skills, system, training
from skill_adapter.core.config import Settings, load_settings
from skill_adapter.core.db import init_db
from skill_adapter.service import Enqueue, reap_expired, sweep_queued

log = logging.getLogger(__name__)


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


def create_app(
    settings: Settings | None = None, *, enqueue: Enqueue | None = None, run_sweeper: bool = True
) -> FastAPI:
    """Build the API. ``enqueue`` defaults to sending the job id to Celery by task name."""
    settings = settings or load_settings()
    if enqueue is None:
        from skill_adapter.worker.queue import sender

        enqueue = sender(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        init_db(settings)
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
    app.state.enqueue = enqueue
    install_error_handlers(app)
    app.include_router(training.router)
    app.include_router(system.router)
    app.include_router(skills.router)
    return app
