"""A worker killed with SIGKILL mid-training: the reaper takes the job back, another run resumes it from
the newest complete checkpoint, and the final adapter is the uninterrupted run's, tensor for tensor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from skill_adapter import crud, queued
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.pipeline import execute_job
from skill_adapter.queued import TRAINING
from skill_adapter.training.checkpoints import latest_complete_checkpoint
from skill_adapter.worker.supervisor import reap_expired
from tests.helpers.jobs import make_job

pytestmark = pytest.mark.slow

PARAMS = {"num_epochs": 3, "batch_size": 1, "gradient_accumulation_steps": 2, "learning_rate": 1e-3, "seed": 7}


def final_tensors(settings: Settings, job_id: str) -> dict[str, torch.Tensor]:
    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
    assert job.status == "succeeded", (job.status, job.error_code, job.error_message)
    return load_file(Path(job.adapter_path) / "adapter_model.safetensors")


def worker_process(settings: Settings, job_id: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SKILL_ADAPTER_MODEL": "tiny",
        "SKILL_ADAPTER_DATA_DIR": str(settings.data_dir),
        "SKILL_ADAPTER_CHECKPOINT_DIR": str(settings.checkpoint_dir),
        "SKILL_ADAPTER_SKILLS_ROOT": str(settings.skills_root),
        "SKILL_ADAPTER_SAVE_STEPS": str(settings.save_steps),
    }
    code = f"from skill_adapter.pipeline import execute_job; from skill_adapter.core.config import load_settings; execute_job({job_id!r}, settings=load_settings())"  # noqa: E501
    return subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)


def test_killed_worker_resumes_to_the_same_adapter(settings: Settings, skills_root: Path) -> None:
    settings = settings.model_copy(update={"save_steps": 4})
    reference = make_job(settings, skills_root, **PARAMS)
    assert execute_job(reference, settings=settings) == "succeeded"

    job_id = make_job(settings, skills_root, **PARAMS)
    out = settings.checkpoint_dir.resolve() / job_id
    proc = worker_process(settings, job_id)
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            done = latest_complete_checkpoint(out)
            if done is not None and int(done.name.split("-")[1]) >= 8:
                break
            assert proc.poll() is None, "the worker ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint appeared in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the worker and its training child, no clean-up
        proc.wait()
    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
        assert job.status == "running" and job.step < job.total_steps, "killed mid-training"
        killed_at = job.step

    lease = settings.model_copy(update={"job_lease_seconds": 0.5})
    time.sleep(1.0)
    requeued: list[str] = []
    assert reap_expired(settings=lease, enqueue=requeued.append) == [job_id]
    assert requeued == [job_id]

    assert execute_job(job_id, settings=settings) == "succeeded"
    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
        logs = [line.message for line in crud.read_logs(session=session, job_id=job_id, after=0, limit=5000)]
    assert job.attempts == 2 and job.step == job.total_steps
    assert any(message.startswith("resuming from checkpoint-") for message in logs)
    assert killed_at >= 8

    expected, resumed = final_tensors(settings, reference), final_tensors(settings, job_id)
    assert expected.keys() == resumed.keys()
    for name in expected:
        assert torch.equal(expected[name], resumed[name]), name


def test_a_job_whose_worker_keeps_dying_fails_after_max_attempts(settings: Settings, skills_root: Path) -> None:
    job_id = make_job(settings, skills_root, num_epochs=1)
    lease = settings.model_copy(update={"job_lease_seconds": 0.1, "max_attempts": 2})
    for attempt in (1, 2):
        with session_scope(settings) as session:
            assert queued.claim(session=session, kind=TRAINING, work_id=job_id, worker_id=f"dead-{attempt}")
            crud.update_job(session=session, job_id=job_id, heartbeat_at=crud.utcnow() - timedelta(seconds=5))
        reap_expired(settings=lease, enqueue=lambda _job_id: None)
    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
    assert job.status == "failed" and job.error_code == "worker_lost"
    assert "2 time" in job.error_message
