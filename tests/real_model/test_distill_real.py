"""The distill recipe on the real model (marker real_model): the prompted model teaches, the adapter learns.

Kept short for CI: a few model-written prompts, short teacher answers, one epoch of the KL loss.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skill_adapter import crud
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.evaluation.cases import held_out_cases
from skill_adapter.evaluation.runner import evaluate
from skill_adapter.pipeline import execute_job
from tests.helpers.jobs import make_job

pytestmark = [pytest.mark.real_model, pytest.mark.timeout(1800)]


def test_distill_kl_on_the_real_model_moves_the_adapter_towards_the_prompted_model(
    real_model_settings: Settings, skills_root: Path
) -> None:
    settings = real_model_settings.model_copy(update={"save_steps": 10_000})
    job_id = make_job(
        settings,
        skills_root,
        recipe="distill",
        distill_loss="kl",
        distill_prompts=2,
        teacher_max_new_tokens=24,
        num_epochs=1,
        batch_size=4,
        gradient_accumulation_steps=1,
        learning_rate=1e-3,
    )
    assert execute_job(job_id, settings=settings) == "succeeded"
    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
        config, adapter = dict(job.config), Path(job.adapter_path or "")
    summary = job.dataset_stats["distill"]
    assert summary["train"] >= 4 and summary["teacher"]["adapter"] == "disabled"
    out = settings.checkpoint_dir.resolve() / job_id
    cases = [c for c in held_out_cases(out / "dataset") if c.generator != "off_skill"][:3]
    assert cases and all(c.reference.strip() for c in cases), "the real teacher writes answers"

    report = evaluate(
        cases,
        config=config,
        adapter_path=adapter,
        skill_text=(skills_root / "commit-messages" / "SKILL.md").read_text(encoding="utf-8"),
        params={"source": "held_out", "max_new_tokens": 4},
    )
    arms = report["arms"]
    # The skill in the prompt changes the real model's distribution, and the KL-trained adapter closes part
    # of that gap on prompts it never trained on.
    assert arms["base"]["kl_to_prompted"] > 0.05, arms
    assert arms["adapter"]["kl_to_prompted"] < arms["base"]["kl_to_prompted"], arms
