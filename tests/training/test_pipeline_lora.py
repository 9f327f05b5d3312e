"""A tiny-model LoRA job through the real pipeline (claim, child process, TRL), on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from skill_adapter import crud
from skill_adapter.core.base_models import portable_model_path, same_model
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.pipeline import execute_job
from tests.helpers.jobs import make_job

pytestmark = pytest.mark.slow


def test_lora_job_trains_and_saves_a_loadable_adapter(settings: Settings, skills_root: Path) -> None:
    settings = settings.model_copy(update={"save_steps": 5})
    job_id = make_job(
        settings, skills_root, num_epochs=2, batch_size=8, gradient_accumulation_steps=1, learning_rate=5e-3
    )
    assert execute_job(job_id, settings=settings) == "succeeded"
    assert execute_job(job_id, settings=settings) == "skipped"  # redelivery is a no-op

    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
        points = crud.read_metrics(session=session, job_id=job_id, after=0, limit=1000)
        checkpoints = crud.list_checkpoints(session=session, job_id=job_id)
    assert job.status == "succeeded" and job.attempts == 1
    assert job.progress == 1.0 and job.current_epoch == 2 and job.step == job.total_steps
    train_losses = [p.loss for p in points if p.loss is not None]
    eval_losses = [p.eval_loss for p in points if p.eval_loss is not None]
    assert train_losses[-1] < train_losses[0], train_losses
    assert len(eval_losses) == 2, "one validation loss per epoch"
    assert all(p.learning_rate is not None for p in points if p.loss is not None)
    assert job.dataset_stats and job.dataset_stats["train_examples"] > 0

    out = settings.checkpoint_dir.resolve() / job_id
    assert (out / "train.log").read_text().count("step ") >= len(train_losses)
    assert (out / "dataset" / "train.jsonl").is_file()
    steps = sorted(c.step for c in checkpoints if Path(c.path).name.startswith("checkpoint-"))
    assert steps and steps[-1] == job.total_steps
    assert any(s % 5 == 0 for s in steps)

    final = out / "final"
    config = json.loads((final / "adapter_config.json").read_text())
    # The embedded model lives inside the checkout: the adapter names it relative to the working
    # directory (the repository root), so the name stays valid when the checkout moves.
    recorded = config["base_model_name_or_path"]
    assert recorded == portable_model_path(settings.model_name_or_path) and not Path(recorded).is_absolute()
    assert same_model(recorded, settings.model_name_or_path)
    assert config["r"] == 16
    card = (final / "README.md").read_text()  # our model card replaces PEFT's placeholder
    assert "SKILL.md sha256" in card and "| lora_r | 16 |" in card and "Not evaluated yet" in card
    weights = load_file(final / "adapter_model.safetensors")
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b), "LoRA B starts at zero and must have moved"
    assert not any("lora" not in name for name in weights), "only adapter weights are saved"


def test_job_with_unusable_skill_fails_with_a_code(settings: Settings, skills_root: Path) -> None:
    job_id = make_job(settings, skills_root, num_epochs=1)
    (skills_root / "commit-messages" / "SKILL.md").write_bytes(b"\x00\x01 binary now")
    assert execute_job(job_id, settings=settings) == "failed"
    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
    assert job.error_code == "skill_invalid"
    assert job.error_message


def test_further_fine_tuning_starts_from_an_earlier_adapter(settings: Settings, skills_root: Path) -> None:
    first = make_job(settings, skills_root, num_epochs=1, batch_size=8, lora_r=4, learning_rate=5e-3)
    assert execute_job(first, settings=settings) == "succeeded"
    second = make_job(settings, skills_root, num_epochs=1, batch_size=8, learning_rate=5e-3, init_adapter=first)
    assert execute_job(second, settings=settings) == "succeeded"
    with session_scope(settings) as session:
        jobs = {j: crud.get_job(session=session, job_id=j) for j in (first, second)}
        logs = [line.message for line in crud.read_logs(session=session, job_id=second, after=0, limit=2000)]
    assert any("continuing from the adapter in" in message for message in logs)
    start, end = (load_file(Path(jobs[j].adapter_path) / "adapter_model.safetensors") for j in (first, second))
    assert start.keys() == end.keys()
    assert all(t.shape[0] == 4 for name, t in end.items() if "lora_A" in name), "rank comes from the earlier adapter"
    assert any(not (start[name] == end[name]).all() for name in start), "training went on"
