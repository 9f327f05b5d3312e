"""Celery configuration from settings, and the sender the API uses.

Long training tasks: late acknowledgement, prefetch 1, one task at a time per worker process.
The broker carries job ids only; the job row is the source of truth.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

from celery import Celery

from skill_adapter.core.config import Settings
from skill_adapter.queued import EVALUATION, KINDS, QUEUES, TRAINING, WorkId

# Each kind of queued work has its task and its queue (``queued.KINDS``); these names are the two built in.
TRAIN_TASK, TRAINING_QUEUE = TRAINING.task, TRAINING.queue
EVALUATE_TASK, EVALUATION_QUEUE = EVALUATION.task, EVALUATION.queue


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
            "control_folder": str(folder / "control"),  # broadcast tables; kombu's default is ./control
            "store_processed": False,
        }
    else:
        visibility = settings.broker_visibility_timeout
        transport_options = {
            "visibility_timeout": visibility,
            # Idle workers look for messages whose worker vanished every few seconds, not every 100 s.
            "unacked_restore_interval": min(10.0, max(1.0, visibility / 4)),
            "unacked_restore_throttle": 1,
        }
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=TRAINING_QUEUE,
        task_routes={kind.task: {"queue": kind.queue} for kind in KINDS.values()},
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_soft_shutdown_timeout=0,
    )
    return app


class Sender:
    """``enqueue(work_id)``: sends by task name (the API never imports the task code).

    The id's kind (``WorkId.kind``, a key of ``queued.KINDS``) names the task and the queue.
    """

    def __init__(self, settings: Settings) -> None:
        self.app = create_celery(settings)
        self._redis = settings.resolved_broker_url.startswith(("redis://", "rediss://"))
        self._queue_folder = settings.broker_folder / "queue" if settings.uses_embedded_broker else None
        self.requeue_after = settings.requeue_after_seconds

    def __call__(self, work_id: WorkId) -> None:
        if not isinstance(work_id, WorkId):  # a bare id does not say which task runs it
            raise TypeError(f"enqueue needs a WorkId (an id with its kind), got {work_id!r}")
        kind = KINDS[work_id.kind]
        self.app.send_task(kind.task, args=[str(work_id)], queue=kind.queue)

    def waiting_job_ids(self) -> set[str] | None:
        """The ids whose messages wait in the broker's queues, or None where the broker cannot say."""
        waiting = self.waiting_work()
        return None if waiting is None else {work_id for _, work_id in waiting}

    def waiting_work(self) -> list[tuple[str, str]] | None:
        """The messages waiting in the broker's queues, as (kind name, id), one per message; None where the
        broker cannot say.

        The sweeper skips their ids and counts them, so re-sending lost messages never piles up duplicates
        of waiting ones. Redis and the embedded broker's folder are inspected. On Redis, a message a worker
        received in the last ``REQUEUE_AFTER_SECONDS`` counts too (it is about to be claimed); an older
        unacknowledged one belongs to a worker that died, or to work running now. The embedded broker keeps
        a message as a file until a worker takes it.
        """
        if self._queue_folder is not None:
            return _folder_work(self._queue_folder)
        if not self._redis:
            return None
        found: list[tuple[str, str]] = []
        with self.app.connection_for_write() as conn:
            client = conn.default_channel.client
            for queue in QUEUES:
                # kombu keeps one list per priority step: "<queue>" and "<queue>\x06\x16<step>"
                for key in (queue, *(f"{queue}\x06\x16{step}" for step in (3, 6, 9))):
                    found.extend(filter(None, (_work_of(json.loads(raw)) for raw in client.lrange(key, 0, -1))))
            received = client.zrangebyscore("unacked_index", time.time() - self.requeue_after, "+inf")
            for raw in client.hmget("unacked", received) if received else ():
                if raw is not None:  # [message, exchange, routing key]
                    found.extend(filter(None, [_work_of(json.loads(raw)[0])]))
        return found


MAX_SCANNED_MESSAGES = 100_000


def _folder_work(folder: Path) -> list[tuple[str, str]] | None:
    """The (kind, id) of each message waiting in the embedded broker's folder (one JSON file per message)."""
    found: list[tuple[str, str]] = []
    try:
        names = [entry.name for entry in os.scandir(folder) if entry.name.endswith(".msg")]
    except OSError:
        return None
    for name in names[:MAX_SCANNED_MESSAGES]:
        try:
            message = json.loads((folder / name).read_bytes())
        except (OSError, ValueError):  # taken by a worker meanwhile, or half written
            continue
        if isinstance(message, dict) and (work := _work_of(message)) is not None:
            found.append(work)
    return found


KIND_OF_TASK = {kind.task: kind.name for kind in KINDS.values()}


def _work_of(message: dict[str, Any]) -> tuple[str, str] | None:
    """The kind (from the task's name) and the id carried by one Celery message (protocol 2, JSON), or None."""
    try:
        kind = KIND_OF_TASK.get(message["headers"]["task"])
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return (kind, str(args[0])) if kind is not None and args else None
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def sender(settings: Settings) -> Sender:
    """The enqueue function the API uses."""
    return Sender(settings)
