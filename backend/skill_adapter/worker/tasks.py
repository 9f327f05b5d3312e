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
        """Claim and run one piece of work; a redelivered message for work already taken is a no-op."""
        return supervise(kind, work_id, settings=get_settings())

    return run


TASKS = {name: _task_for(kind) for name, kind in KINDS.items()}
