"""Worker heartbeats: each Celery worker keeps a row in ``workers`` fresh, so health can list live workers.

A daemon thread in the worker process writes the row at start-up and every ``WORKER_HEARTBEAT_SECONDS``;
a clean shutdown deletes it, and a worker that died simply stops being fresh. The device is read with
NVML or ``nvidia-smi`` (``worker/device.py``): torch is never imported here.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete

from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.models import Worker, utcnow
from skill_adapter.worker.device import worker_device

log = logging.getLogger(__name__)

WORKER_HEARTBEAT_SECONDS = 10.0
# A worker whose row is older than this is not live (three missed heartbeats).
WORKER_LIVE_SECONDS = 3 * WORKER_HEARTBEAT_SECONDS
# Rows of workers dead this long are deleted when another worker starts.
WORKER_FORGET_SECONDS = 24 * 3600.0


def this_worker_id() -> str:
    """``hostname:pid``: the same id the pipeline writes to ``Job.worker_id`` when this process claims a job."""
    return f"{socket.gethostname()}:{os.getpid()}"


def record_heartbeat(
    settings: Settings,
    *,
    worker_id: str,
    name: str,
    queues: list[str],
    device: dict[str, Any],
    started_at: datetime,
) -> None:
    """Insert or refresh this worker's row."""
    hostname, _, pid = worker_id.rpartition(":")
    with session_scope(settings) as session:
        row = session.get(Worker, worker_id)
        if row is None:
            row = Worker(id=worker_id, hostname=hostname, pid=int(pid), started_at=started_at)
            session.add(row)
        row.name = name
        row.queues = ",".join(queues)
        row.device = device["device"]
        row.gpu_name = device["gpu_name"]
        row.gpu_free_mb = device["gpu_free_mb"]
        row.gpu_total_mb = device["gpu_total_mb"]
        row.details = device["details"]
        row.heartbeat_at = utcnow()


def remove_worker(settings: Settings, worker_id: str) -> None:
    with session_scope(settings) as session:
        session.execute(delete(Worker).where(Worker.id == worker_id))


def forget_dead_workers(settings: Settings, *, older_than: float = WORKER_FORGET_SECONDS) -> int:
    """Delete the rows of workers silent for ``older_than`` seconds; returns how many."""
    cutoff = utcnow() - timedelta(seconds=older_than)
    with session_scope(settings) as session:
        result = session.execute(delete(Worker).where(Worker.heartbeat_at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)


class WorkerHeartbeat:
    """Writes this worker's row now and then every ``interval`` seconds from a daemon thread."""

    def __init__(
        self,
        settings: Settings,
        *,
        name: str,
        queues: list[str],
        interval: float = WORKER_HEARTBEAT_SECONDS,
        device: Callable[[], dict[str, Any]] = worker_device,
    ) -> None:
        self.settings = settings
        self.name = name
        self.queues = queues
        self.interval = interval
        self.device = device
        self.worker_id = this_worker_id()
        self.started_at = utcnow()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        record_heartbeat(
            self.settings,
            worker_id=self.worker_id,
            name=self.name,
            queues=self.queues,
            device=self.device(),
            started_at=self.started_at,
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except Exception as exc:  # the database is down: keep trying, the worker itself carries on
                log.warning("worker heartbeat: %s", exc)
            self._stop.wait(self.interval)

    def start(self) -> None:
        try:
            forget_dead_workers(self.settings)
        except Exception as exc:
            log.warning("worker heartbeat: %s", exc)
        self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and delete the row (a clean shutdown is not a dead worker)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            remove_worker(self.settings, self.worker_id)
        except Exception as exc:
            log.warning("worker heartbeat: could not remove this worker's row: %s", exc)


_current: WorkerHeartbeat | None = None


def install(settings: Settings) -> None:
    """Start the heartbeat when the Celery worker is ready and stop it when the worker shuts down."""
    from celery import signals

    @signals.worker_ready.connect(weak=False)
    def _on_ready(sender: Any = None, **_: Any) -> None:
        global _current
        queues = sorted(sender.app.amqp.queues.consume_from) if sender is not None else []
        name = getattr(sender, "hostname", "") or ""
        _current = WorkerHeartbeat(settings, name=name, queues=queues)
        _current.start()

    @signals.worker_shutdown.connect(weak=False)
    def _on_shutdown(**_: Any) -> None:
        if _current is not None:
            _current.stop()
