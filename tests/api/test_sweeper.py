"""Queued jobs whose message was lost are sent again; duplicates are harmless."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from skill_adapter import crud, queued
from skill_adapter.api.main import create_app
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.queued import TRAINING
from skill_adapter.worker.supervisor import sweep_queued


def test_broker_down_still_accepts_and_sweeper_resends(settings: Settings) -> None:
    def broken(job_id: str) -> None:
        raise ConnectionError("broker down")

    with TestClient(create_app(settings, enqueue=broken, run_sweeper=False)) as client:
        resp = client.post("/api/training/start", json={"skill_path": "commit-messages/SKILL.md"})
    assert resp.status_code == 202
    job_id = resp.json()["job_id"]

    sent: list[str] = []
    assert sweep_queued(settings=settings, enqueue=sent.append, older_than=0) == [job_id]
    assert sent == [job_id]
    # Sent just now: not stale any more under the normal threshold.
    assert sweep_queued(settings=settings, enqueue=sent.append) == []


def test_sweeper_ignores_jobs_that_left_the_queue(client: Any, settings: Settings) -> None:
    job_id = client.post("/api/training/start", json={"skill_path": "commit-messages"}).json()["job_id"]
    with session_scope(settings) as session:
        queued.claim(session=session, kind=TRAINING, work_id=job_id, worker_id="w")
    assert sweep_queued(settings=settings, enqueue=lambda _: None, older_than=0) == []


def _age_heartbeat(settings: Settings, job_id: str, seconds: float) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from skill_adapter.models import Job, utcnow

    with session_scope(settings) as session:
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds)))


def test_reaper_requeues_a_job_whose_worker_died_then_fails_it(client: Any, settings: Settings) -> None:
    from skill_adapter.worker.supervisor import reap_expired

    settings = settings.model_copy(update={"job_lease_seconds": 30, "max_attempts": 2})
    job_id = client.post("/api/training/start", json={"skill_path": "commit-messages"}).json()["job_id"]
    sent: list[str] = []

    with session_scope(settings) as session:
        assert queued.claim(session=session, kind=TRAINING, work_id=job_id, worker_id="w1")
    assert reap_expired(settings=settings, enqueue=sent.append) == []  # heartbeat is fresh
    _age_heartbeat(settings, job_id, 60)
    assert reap_expired(settings=settings, enqueue=sent.append) == [job_id]
    assert sent == [job_id]
    with session_scope(settings) as session:
        assert crud.get_job(session=session, job_id=job_id).status == "queued"
        # the old worker's lease is gone: its heartbeat and its finish are refused
        assert not queued.renew_lease(session=session, kind=TRAINING, work_id=job_id, worker_id="w1")
        assert queued.claim(session=session, kind=TRAINING, work_id=job_id, worker_id="w2")
        assert not queued.finish(session=session, kind=TRAINING, work_id=job_id, status="succeeded", worker_id="w1")

    _age_heartbeat(settings, job_id, 60)
    assert reap_expired(settings=settings, enqueue=sent.append) == []
    status = client.get(f"/api/training/{job_id}/status").json()
    assert status["status"] == "failed"
    assert status["error"]["code"] == "worker_lost"
    assert status["attempts"] == 2


def test_heartbeat_renews_the_lease_several_times_per_lease(settings: Settings) -> None:
    from skill_adapter.worker.supervisor import heartbeat_interval

    assert heartbeat_interval(settings) == 5.0  # the default 60 s lease
    assert heartbeat_interval(settings.model_copy(update={"job_lease_seconds": 3})) == 0.75
    assert heartbeat_interval(settings.model_copy(update={"job_lease_seconds": 0.1})) == 0.2
