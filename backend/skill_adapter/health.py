"""Health: the database, the broker and the live workers, each checked with a short timeout.

Used by ``GET /api/health`` and ``skill-adapter doctor``. Never imports torch, never hangs: each check
runs in a small thread pool and is reported as failed once its timeout passes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import make_url, select, text

from skill_adapter.core.config import Settings
from skill_adapter.core.db import UPGRADE_COMMAND, get_engine, head_revision, safe_url, session_scope
from skill_adapter.queued import QUEUES

CHECK_TIMEOUT_SECONDS = 3.0

# Bounded: a check stuck past its timeout holds a thread, never the caller.
_pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="health")


def _timed(check: Any, *args: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = check(*args)
    except Exception as exc:
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}".strip()[:500]}
    result.setdefault("status", "ok")
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def _database(settings: Settings) -> dict[str, Any]:
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        raise FileNotFoundError(f"no database at {url.database} yet: run `{UPGRADE_COMMAND}` or `skill-adapter serve`")
    engine = get_engine(settings)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        try:
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except Exception:
            revision = None
    head = head_revision()
    report: dict[str, Any] = {"dialect": engine.dialect.name, "revision": revision, "head": head}
    if revision != head:
        report["status"] = "error"
        report["error"] = f"schema at revision {revision or 'none'}, this version needs {head}: run `{UPGRADE_COMMAND}`"
    return report


def _broker(settings: Settings, timeout: float) -> dict[str, Any]:
    url = settings.resolved_broker_url
    scheme = url.split("://", 1)[0].lower()
    if settings.uses_embedded_broker:
        folders = [settings.broker_folder / "queue", settings.broker_folder / "processed"]
        missing = [str(folder) for folder in folders if not folder.is_dir() or not os.access(folder, os.W_OK)]
        if missing:
            raise OSError(f"broker folder missing or not writable: {', '.join(missing)}")
        waiting = {queue: sum(1 for _ in folders[0].glob(f"*.{queue}.msg")) for queue in QUEUES}
        return {"transport": "filesystem", "folder": str(settings.broker_folder), "messages": waiting}
    if scheme in ("redis", "rediss"):
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
            pipe = client.pipeline()
            for queue in QUEUES:  # kombu keeps a list per queue and priority step ("training", "training\x06\x163"...)
                for key in [queue, *(f"{queue}\x06\x16{step}" for step in (3, 6, 9))]:
                    pipe.llen(key)
            counts = pipe.execute()
        finally:
            client.close()
        waiting = {queue: sum(counts[i * 4 : i * 4 + 4]) for i, queue in enumerate(QUEUES)}
        return {"transport": scheme, "messages": waiting}
    from kombu import Connection

    with Connection(url, connect_timeout=timeout) as conn:
        conn.ensure_connection(max_retries=1, timeout=timeout)
    return {"transport": scheme}


def _workers(settings: Settings) -> list[dict[str, Any]]:
    from skill_adapter.models import Evaluation, Job, Worker, utcnow
    from skill_adapter.worker.heartbeat import WORKER_LIVE_SECONDS

    cutoff = utcnow() - timedelta(seconds=WORKER_LIVE_SECONDS)
    with session_scope(settings) as session:
        rows = session.scalars(select(Worker).where(Worker.heartbeat_at >= cutoff).order_by(Worker.id)).all()
        ids = [row.id for row in rows]
        running = [
            *session.execute(select(Job.worker_id, Job.id).where(Job.status == "running", Job.worker_id.in_(ids))),
            *session.execute(
                select(Evaluation.worker_id, Evaluation.id).where(
                    Evaluation.status == "running", Evaluation.worker_id.in_(ids)
                )
            ),
        ]
    jobs = {worker_id: job_id for worker_id, job_id in running}  # a training job or an evaluation (eval-...)
    return [
        {
            "id": row.id,
            "name": row.name,
            "hostname": row.hostname,
            "pid": row.pid,
            "queues": [queue for queue in row.queues.split(",") if queue],
            "device": row.device,
            "gpu_name": row.gpu_name,
            "gpu_free_mb": row.gpu_free_mb,
            "gpu_total_mb": row.gpu_total_mb,
            "details": row.details or {},
            "job_id": jobs.get(row.id),
            "started_at": row.started_at.isoformat(),
            "heartbeat_at": row.heartbeat_at.isoformat(),
        }
        for row in rows
    ]


@dataclass
class EmbeddedWorker:
    """The worker process that ``skill-adapter serve`` starts beside the API, as health reports it.

    It takes a while to boot (imports, then its first heartbeat): until the worker's heartbeat row appears
    it is ``starting``, not missing. Then ``running`` while its heartbeat is fresh, ``not responding`` when
    the process lives but its heartbeat went stale, and ``exited`` (with the exit code) once it is gone.
    """

    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    seen_live: bool = False

    def state(self, workers: list[dict[str, Any]]) -> dict[str, Any]:
        pid, host = self.process.pid, socket.gethostname()
        exit_code = self.process.poll()
        if exit_code is not None:
            status = "exited"
        elif any(worker["pid"] == pid and worker["hostname"] == host for worker in workers):
            status, self.seen_live = "running", True
        else:
            status = "not responding" if self.seen_live else "starting"
        return {
            "pid": pid,
            "status": status,
            "exit_code": exit_code,
            "seconds_since_start": round(time.monotonic() - self.started, 1),
        }


def _embedded_warning(state: dict[str, Any]) -> str | None:
    if state["status"] == "not responding":
        return "the embedded worker's heartbeat is stale: it may be stuck"
    if state["status"] == "exited":
        return f"the embedded worker exited (code {state['exit_code']}): see serve's output"
    return None


def health_report(
    settings: Settings,
    *,
    timeout: float = CHECK_TIMEOUT_SECONDS,
    embedded_worker: EmbeddedWorker | None = None,
) -> dict[str, Any]:
    """``{"status", "database", "broker", "workers", "embedded_worker", "model", "warnings"}``.

    ``status`` is ``ok`` when both the database and the broker answer; live workers are those whose
    heartbeat is fresh (none is a warning, not a failure: the API accepts jobs and they wait queued).
    ``embedded_worker`` is the state of the worker ``skill-adapter serve`` started (null without one).
    """
    db_future = _pool.submit(_timed, _database, settings)
    broker_future = _pool.submit(_timed, _broker, settings, timeout)
    deadline = time.monotonic() + timeout

    def outcome(future: Any, what: str) -> dict[str, Any]:
        try:
            return dict(future.result(timeout=max(0.0, deadline - time.monotonic())))
        except FutureTimeout:
            future.cancel()
            return {"status": "error", "error": f"no answer from the {what} within {timeout:g} s"}

    database = {"url": safe_url(settings.resolved_database_url), **outcome(db_future, "database")}
    broker = {"url": safe_url(settings.resolved_broker_url), **outcome(broker_future, "broker")}
    workers: list[dict[str, Any]] = []
    warnings: list[str] = []
    if database["status"] == "ok":
        future = _pool.submit(_workers, settings)
        try:
            workers = future.result(timeout=max(0.5, deadline - time.monotonic()))
        except Exception as exc:
            future.cancel()
            warnings.append(f"could not read the workers' heartbeats: {type(exc).__name__} {exc}".strip())
    embedded = embedded_worker.state(workers) if embedded_worker is not None else None
    if embedded is not None and (note := _embedded_warning(embedded)):
        warnings.append(note)
    if embedded is not None and embedded["status"] == "starting" and not workers:
        warnings.append(
            f"the embedded worker is starting ({embedded['seconds_since_start']:.0f} s so far; it takes 10-30 s): "
            "jobs wait queued until it is ready"
        )
    elif database["status"] == "ok" and not workers:
        warnings.append("no live worker: jobs stay queued until one starts (`skill-adapter worker`)")
    served = {queue for worker in workers for queue in worker["queues"]}
    for queue in QUEUES:
        if workers and queue not in served:
            warnings.append(f"no live worker consumes the {queue} queue")
    ok = database["status"] == "ok" and broker["status"] == "ok"
    return {
        "status": "ok" if ok else "unavailable",
        "database": database,
        "broker": broker,
        "workers": workers,
        "embedded_worker": embedded,
        "model": model_section(settings),
        "warnings": warnings,
    }


def model_section(settings: Settings) -> dict[str, Any]:
    """The base model jobs will train: name, kind, parameters, size, and whether it is ready or will be
    converted on first use. Resolution only: no torch import, no conversion, no download."""
    try:
        resolved = settings.base_model()
    except Exception as exc:  # a model folder that vanished under us must not fail the health check
        return {"name": settings.model, "ready": False, "problem": f"{type(exc).__name__}: {exc}"}
    return {**resolved.to_dict(), "summary": resolved.describe()}
