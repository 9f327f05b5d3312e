"""Known failures end the job as `failed` with a code and advice a person can act on (unit level:
the failure is injected into the trainer in this process)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from trl import SFTTrainer

from skill_adapter import crud, queued
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.pipeline import run_claimed_job
from skill_adapter.queued import TRAINING
from tests.helpers.jobs import make_job


def claimed_job(settings: Settings, skills_root: Path) -> str:
    job_id = make_job(settings, skills_root, num_epochs=1)
    with session_scope(settings) as session:
        assert queued.claim(session=session, kind=TRAINING, work_id=job_id, worker_id="test")
    return job_id


def test_out_of_memory_fails_with_the_guides_advice(
    settings: Settings, skills_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def oom(self: SFTTrainer, *args: object, **kwargs: object) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(SFTTrainer, "train", oom)
    job_id = claimed_job(settings, skills_root)
    assert run_claimed_job(job_id, settings=settings, worker_id="test") == "failed"
    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
    assert job.error_code == "out_of_memory"
    for advice in ("batch_size", "gradient_accumulation_steps", "qlora", "max_seq_length"):
        assert advice in job.error_message


def test_an_unexpected_error_fails_with_its_type_and_message(
    settings: Settings, skills_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: SFTTrainer, *args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(SFTTrainer, "train", broken)
    job_id = claimed_job(settings, skills_root)
    assert run_claimed_job(job_id, settings=settings, worker_id="test") == "failed"
    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
        logs = [line for line in crud.read_logs(session=session, job_id=job_id, after=0, limit=1000)]
    assert job.error_code == "training_failed" and "disk on fire" in job.error_message
    assert any(line.level == "ERROR" and "Traceback" in line.message for line in logs)
