"""A tiny-model job through the real pipeline tells what happened: typed events at each life-cycle point,
checkpoints with their metrics, TensorBoard and MLflow curves, and signed webhooks to a real receiver (the
first delivery dropped)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skill_adapter import crud, webhooks
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.pipeline import execute_job
from tests.helpers.jobs import make_job
from tests.helpers.webhook_receiver import SECRET, wait_for, webhook_receiver

pytestmark = pytest.mark.slow


@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")  # MLflow's own store, read here
def test_job_events_checkpoint_metrics_tensorboard_and_webhooks(settings: Settings, skills_root: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    settings = settings.model_copy(
        update={
            "save_steps": 1000,
            "webhook_allow_private": True,
            "webhook_secret": SECRET,
            "webhook_retry_seconds": 0.05,
        }
    )
    with webhook_receiver(script=[500]) as receiver:
        job_id = make_job(
            settings,
            skills_root,
            num_epochs=2,
            batch_size=8,
            gradient_accumulation_steps=1,
            learning_rate=5e-3,
            webhook_url=receiver.url,
            webhook_checkpoints=True,
            report_to=["tensorboard", "mlflow"],
        )
        dispatcher = webhooks.Dispatcher(settings, interval=0.05).start()
        try:
            assert execute_job(job_id, settings=settings) == "succeeded"
            with session_scope(settings) as session:
                checkpoints = crud.list_checkpoints(session=session, job_id=job_id)
            wanted = len(checkpoints) + 1  # each checkpoint (opted in) and the terminal state
            wait_for(
                lambda: (
                    len({r.headers["webhook-id"] for r in receiver.requests}) == wanted
                    and any(json.loads(r.body)["type"] == "training.job.succeeded" for r in receiver.requests[1:])
                ),
                what="every webhook delivered",
            )
        finally:
            dispatcher.stop()

    with session_scope(settings) as session:
        events = crud.read_events(session=session, job_id=job_id, after=0, limit=1000)
    types = [e.type for e in events]
    life = [t for t in types if not t.startswith("webhook_")]
    assert life[:4] == ["created", "queued", "started", "dataset_built"] and life[-1] == "succeeded"
    assert life.count("epoch_finished") == 2 and life.count("validation_finished") == 2
    assert life.count("checkpoint_saved") == len(checkpoints) >= 3  # two epoch checkpoints and the final adapter
    epoch_two = [e for e in events if e.type == "epoch_finished"][-1]
    assert epoch_two.data["epoch"] == 2 and "validation_loss" in epoch_two.data["metrics"]
    assert types.count("webhook_retrying") == 1 and "webhook_delivered" in types  # the dropped one was retried

    for checkpoint in checkpoints:  # each checkpoint carries its step's metrics
        assert {"train_loss", "validation_loss", "train_token_accuracy"} <= set(checkpoint.metrics or {})
    for request in receiver.requests:
        assert webhooks.verify(SECRET, request.headers, request.body)

    runs = list((settings.checkpoint_dir.resolve() / job_id / "tensorboard").glob("events.out.tfevents.*"))
    assert runs, "TensorBoard received no event file"
    accumulator = EventAccumulator(str(runs[0].parent)).Reload()
    losses = [s.value for s in accumulator.Scalars("train/loss")]
    assert len(losses) >= 2 and losses[-1] < losses[0]
    assert accumulator.Scalars("eval/loss")

    from mlflow.tracking import MlflowClient

    from skill_adapter.training.trackers import mlflow_db

    mlflow = MlflowClient(tracking_uri=f"sqlite:///{mlflow_db(settings.checkpoint_dir)}")
    (run,) = mlflow.search_runs(
        [mlflow.get_experiment_by_name("skill-adapter").experiment_id], f"attributes.run_name = '{job_id}'"
    )
    assert run.data.tags["skill"] == "commit-messages" and run.data.tags["job_id"] == job_id
    history = [m.value for m in mlflow.get_metric_history(run.info.run_id, "loss")]
    assert len(history) == len(losses) and history[-1] < history[0]
