"""Celery tasks: one per kind of queued work (``queued.KINDS``), each a message (an id) in, one supervisor call."""

from __future__ import annotations

from typing import Any

from skill_adapter.core.config import get_settings
from skill_adapter.queued import KINDS, WorkKind
from skill_adapter.worker.celery_app import app
from skill_adapter.worker.supervisor import supervise


def _task_for(kind: WorkKind) -> Any:
    @app.task(name=kind.task)
    def run(work_id: str) -> str:
        """Claim and run the queued work of this kind that is next in turn across owners (``work_id`` itself
        when fair scheduling is off); a message that finds nothing queued is a no-op."""
        settings = get_settings()
        return supervise(kind, work_id, settings=settings, in_turn=settings.fair_scheduling)

    return run


TASKS = {name: _task_for(kind) for name, kind in KINDS.items()}
