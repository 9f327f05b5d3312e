"""Messages that are lost or delivered twice: the job row decides, so every job trains exactly once."""

from __future__ import annotations

import pytest

from skill_adapter.core.config import Settings
from skill_adapter.core.db import get_engine, session_scope
from skill_adapter.schemas import TrainingParams
from skill_adapter.service import create_training_job
from tests.services.cluster import LONG_JOB, QUICK_JOB, Cluster, wait_until

pytestmark = pytest.mark.services


def deliveries(log_text: str, outcome: str) -> int:
    """How many tasks a worker's log shows finishing with ``outcome`` (the pipeline's return value)."""
    return log_text.count(f": '{outcome}'")


def test_a_message_delivered_twice_trains_once(cluster: Cluster) -> None:
    cluster.env["SKILL_ADAPTER_BROKER_VISIBILITY_TIMEOUT"] = "2"
    api = cluster.start_api()
    first = cluster.start_worker("worker-a")
    job_id = cluster.submit(api, LONG_JOB)
    cluster.wait_for(api, job_id, {"running"})
    # Worker A still holds the message unacknowledged; past the visibility timeout Redis hands it out again.
    second = cluster.start_worker("worker-b")
    wait_until(lambda: deliveries(second.text(), "skipped") >= 1, what="the message delivered a second time")

    status = cluster.wait_for(api, job_id)
    assert status["status"] == "succeeded", cluster.diagnostics(api, job_id)
    assert status["attempts"] == 1
    assert len(cluster.claims(job_id)) == 1
    wait_until(lambda: deliveries(first.text(), "succeeded") == 1, what="worker A's task to end")
    assert deliveries(second.text(), "succeeded") == 0


def test_a_job_committed_but_never_enqueued_is_swept_into_the_queue(cluster: Cluster) -> None:
    api = cluster.start_api()
    worker = cluster.start_worker("worker-a")
    # What a crash between the commit and the enqueue leaves behind: a queued row, no message anywhere.
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        model="tiny",
        database_url=cluster.env["SKILL_ADAPTER_DATABASE_URL"],
        data_dir=cluster.tmp_path / "data",
        checkpoint_dir=cluster.tmp_path / "checkpoints",
        skills_root=cluster.skills_root,
    )
    try:
        with session_scope(settings) as session:
            job = create_training_job(
                session=session,
                skill_file=cluster.skills_root / "commit-messages" / "SKILL.md",
                params=TrainingParams.model_validate({k: v for k, v in QUICK_JOB.items() if k != "skill_path"}),
                settings=settings,
            )
            job_id = job.id
    finally:
        get_engine(settings).dispose()
    assert cluster.redis.client().llen("training") == 0

    status = cluster.wait_for(api, job_id)
    assert status["status"] == "succeeded", cluster.diagnostics(api, job_id)
    assert status["attempts"] == 1
    assert "re-enqueued 1 queued job(s): " + job_id in cluster.procs[0].text()
    wait_until(lambda: deliveries(worker.text(), "succeeded") == 1, what="the task to end")


def test_jobs_queued_when_redis_restarts_are_enqueued_again_once(cluster: Cluster) -> None:
    api = cluster.start_api()
    job_ids = [cluster.submit(api) for _ in range(2)]
    redis = cluster.redis.client()
    assert redis.llen("training") == 2
    cluster.redis.restart()  # no persistence: every message is gone
    assert redis.llen("training") == 0

    wait_until(lambda: redis.llen("training") >= 2, what="the sweeper to re-enqueue the queued jobs")
    assert redis.llen("training") == 2

    worker = cluster.start_worker("worker-a")
    for job_id in job_ids:
        status = cluster.wait_for(api, job_id)
        assert status["status"] == "succeeded", cluster.diagnostics(api, job_id)
        assert status["attempts"] == 1
        assert len(cluster.claims(job_id)) == 1
    # Each job went through the queue once more and only once: no duplicate message was ever consumed.
    wait_until(lambda: deliveries(worker.text(), "succeeded") == 2, what="the last task to end")
    assert deliveries(worker.text(), "skipped") == 0
    assert redis.llen("training") == 0
