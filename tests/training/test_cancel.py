"""Cancelling a running job stops it within seconds, keeps its last checkpoint, and is idempotent."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from skill_adapter import crud, queued
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.pipeline import execute_job
from skill_adapter.queued import TRAINING
from skill_adapter.training.checkpoints import latest_complete_checkpoint
from tests.helpers.jobs import make_job

pytestmark = pytest.mark.slow


def test_cancel_a_running_job(settings: Settings, skills_root: Path) -> None:
    settings = settings.model_copy(update={"save_steps": 3})
    job_id = make_job(settings, skills_root, num_epochs=200, batch_size=1, gradient_accumulation_steps=1)
    result: dict[str, str] = {}
    runner = threading.Thread(target=lambda: result.update(status=execute_job(job_id, settings=settings)))
    runner.start()
    out = settings.checkpoint_dir.resolve() / job_id
    deadline = time.monotonic() + 120
    while latest_complete_checkpoint(out) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert latest_complete_checkpoint(out) is not None, "training never reached a checkpoint"

    with session_scope(settings) as session:
        queued.request_cancel(session=session, kind=TRAINING, work=crud.get_job(session=session, job_id=job_id))
    asked = time.monotonic()
    with session_scope(settings) as session:
        queued.request_cancel(
            session=session, kind=TRAINING, work=crud.get_job(session=session, job_id=job_id)
        )  # twice does no harm
    runner.join(timeout=60)
    stopped_after = time.monotonic() - asked
    assert not runner.is_alive()
    assert result["status"] == "cancelled"
    assert stopped_after < 15, f"took {stopped_after:.1f} s to stop"

    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
        assert job.status == "cancelled" and job.finished_at is not None
        assert job.step < job.total_steps
        assert (
            queued.request_cancel(
                session=session, kind=TRAINING, work=crud.get_job(session=session, job_id=job_id)
            ).status
            == "cancelled"
        )  # and again after
    assert latest_complete_checkpoint(out) is not None, "the last checkpoint is kept"
    assert not (out / "final").exists()
