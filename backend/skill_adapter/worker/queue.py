"""Celery configuration from settings, and the sender the API uses.

Long training tasks: late acknowledgement, prefetch 1, one task at a time per worker process.
The broker carries job ids only; the job row is the source of truth.
"""

from __future__ import annotations

from celery import Celery

from skill_adapter.core.config import Settings

TRAIN_TASK = "skill_adapter.train"
TRAINING_QUEUE = "training"
EVALUATE_TASK = "skill_adapter.evaluate"
EVALUATION_QUEUE = "evaluation"


def create_celery(settings: Settings) -> Celery:
    """A Celery app for these settings (the embedded filesystem broker unless BROKER_URL is set)."""
    app = Celery("skill_adapter", broker=settings.resolved_broker_url)
    transport_options: dict[str, object] = {}
    if settings.uses_embedded_broker:
        folder = settings.broker_folder
        transport_options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "store_processed": False,
        }
    else:
        transport_options = {"visibility_timeout": settings.broker_visibility_timeout}
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=TRAINING_QUEUE,
        task_routes={TRAIN_TASK: {"queue": TRAINING_QUEUE}, EVALUATE_TASK: {"queue": EVALUATION_QUEUE}},
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_soft_shutdown_timeout=0,
    )
    return app


def sender(settings: Settings):  # type: ignore[no-untyped-def]
    """An ``enqueue(job_id)`` callable that sends by task name (the API never imports the task code).

    Evaluation ids (``eval-…``) go to the evaluation queue, training job ids to the training queue.
    """
    app = create_celery(settings)

    def enqueue(job_id: str) -> None:
        if job_id.startswith("eval-"):
            app.send_task(EVALUATE_TASK, args=[job_id], queue=EVALUATION_QUEUE)
        else:
            app.send_task(TRAIN_TASK, args=[job_id], queue=TRAINING_QUEUE)

    return enqueue
