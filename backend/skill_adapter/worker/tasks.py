"""Celery tasks: a message (a job id) in, one call of the pipeline."""

from __future__ import annotations

from skill_adapter.core.config import get_settings
from skill_adapter.pipeline import execute_job
from skill_adapter.worker.celery_app import app
from skill_adapter.worker.queue import EVALUATE_TASK, TRAIN_TASK


@app.task(name=TRAIN_TASK)
def train(job_id: str) -> str:
    """Claim and run one training job; a redelivered message for a job already taken is a no-op."""
    return execute_job(job_id, settings=get_settings())


@app.task(name=EVALUATE_TASK)
def evaluate(evaluation_id: str) -> str:
    """Claim and run one evaluation; a redelivered message for one already taken is a no-op."""
    from skill_adapter.evaluation.jobs import execute_evaluation

    return execute_evaluation(evaluation_id, settings=get_settings())
