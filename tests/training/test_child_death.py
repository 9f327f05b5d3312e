"""A training child killed on its own (kill -9, as the out-of-memory killer does) is retried from its newest
complete checkpoint while attempts remain, with history kept single; a diverging run fails clearly."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from skill_adapter import crud, queued
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.models import Job
from skill_adapter.pipeline import execute_job, run_claimed_job
from skill_adapter.queued import TRAINING
from skill_adapter.training.checkpoints import latest_complete_checkpoint
from tests.helpers.jobs import make_job

pytestmark = pytest.mark.slow

PARAMS = {"num_epochs": 2, "batch_size": 4, "gradient_accumulation_steps": 1, "learning_rate": 1e-3, "seed": 3}


def training_child(job_id: str) -> multiprocessing.Process | None:
    return next((p for p in multiprocessing.active_children() if p.name == f"train-{job_id}"), None)


def test_a_killed_training_child_resumes_from_its_checkpoint(settings: Settings, skills_root: Path) -> None:
    settings = settings.model_copy(update={"save_steps": 3, "keep_checkpoints": 2, "max_attempts": 2})
    settings.prepare_dirs()  # the embedded broker's folders: the worker re-sends the job through them
    job_id = make_job(settings, skills_root, **PARAMS)
    out = settings.checkpoint_dir.resolve() / job_id
    result: dict[str, str] = {}
    worker = threading.Thread(target=lambda: result.update(first=execute_job(job_id, settings=settings)))
    worker.start()

    deadline = time.monotonic() + 300
    killed_at = None
    while killed_at is None:
        assert time.monotonic() < deadline, "no checkpoint appeared in time"
        assert worker.is_alive(), f"the run ended before it could be killed: {result}"
        done = latest_complete_checkpoint(out)
        with session_scope(settings) as session:
            step = crud.get_job(session=session, job_id=job_id).step
        child = training_child(job_id)
        # Past a checkpoint, so the resumed run redoes a step that was already reported.
        if done is not None and child is not None and child.pid and step > int(done.name.split("-")[1]):
            os.kill(child.pid, signal.SIGKILL)  # the child alone: the worker lives on
            killed_at = step
        time.sleep(0.02)
    worker.join(timeout=120)
    assert result["first"] == "queued"

    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
        logs = [line.message for line in crud.read_logs(session=session, job_id=job_id, after=0, limit=5000)]
    assert job.status == "queued" and job.attempts == 1
    assert job.error_code == "worker_crashed" and "SIGKILL" in (job.error_message or "")
    assert any("was killed by SIGKILL" in line and "retrying from checkpoint-" in line for line in logs), logs[-5:]
    # The worker sent the job again itself: its message waits in the embedded broker's folder.
    assert list((settings.broker_folder / "queue").glob("*.msg"))

    assert execute_job(job_id, settings=settings) == "succeeded"  # what the re-sent message does
    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
        points = crud.read_metrics(session=session, job_id=job_id, after=0, limit=5000)
        logs = [line.message for line in crud.read_logs(session=session, job_id=job_id, after=0, limit=5000)]
    assert job.attempts == 2 and job.error_code is None and job.step == job.total_steps
    assert any(line.startswith("resuming from checkpoint-") for line in logs)
    steps = [p.step for p in points]
    assert len(steps) == len(set(steps)) and max(steps) == job.total_steps  # one point per step
    progress_lines = [line.split(":")[0] for line in logs if line.startswith("step ")]
    assert len(progress_lines) == len(set(progress_lines)) and f"step {killed_at}/{job.total_steps}" in progress_lines
    kept = sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint-"))
    assert len(kept) == 2 and (out / "final" / "adapter_model.safetensors").is_file()


def test_a_child_that_keeps_dying_fails_with_the_cause(settings: Settings, skills_root: Path) -> None:
    from skill_adapter.worker.supervisor import _record_end

    settings = settings.model_copy(update={"max_attempts": 1})
    job_id = make_job(settings, skills_root, **PARAMS)
    with session_scope(settings) as session:
        assert queued.claim(session=session, kind=TRAINING, work_id=job_id, worker_id="w")
    assert _record_end(settings, TRAINING, job_id, -signal.SIGKILL, worker_id="w") == "failed"
    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
    assert job.error_code == "worker_crashed" and "SIGKILL" in (job.error_message or "")
    assert "attempt 1 of 1" in (job.error_message or "")


def test_a_diverging_run_fails_with_non_finite_loss(settings: Settings, skills_root: Path) -> None:
    job_id = make_job(settings, skills_root, num_epochs=1, batch_size=4)
    with session_scope(settings) as session:  # what the API now refuses; as an older job row might hold it
        job = crud.get_job(session=session, job_id=job_id)
        session.execute(update(Job).where(Job.id == job_id).values(config={**job.config, "lora_alpha": float("inf")}))
    with session_scope(settings) as session:
        assert queued.claim(session=session, kind=TRAINING, work_id=job_id, worker_id="w")
    # In this process (the training child's own entry point), to spare a process start.
    assert run_claimed_job(job_id, settings=settings, worker_id="w") == "failed"
    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
    assert job.error_code == "non_finite_loss", (job.error_code, job.error_message)
    assert job.adapter_path is None


def test_an_adapter_with_nan_tensors_is_found(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from skill_adapter.training.checkpoints import non_finite_tensors

    save_file({"a": torch.ones(2), "b": torch.tensor([1.0, float("nan")])}, str(tmp_path / "adapter_model.safetensors"))
    assert non_finite_tensors(tmp_path) == ["b"]
