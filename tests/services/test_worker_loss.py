"""Workers that die: another one resumes the job from its last complete checkpoint, or the lease runs out
and the job is failed with ``worker_lost``; a job is never left ``running``."""

from __future__ import annotations

import pytest

from tests.services.cluster import LONG_JOB, Cluster, wait_until

pytestmark = pytest.mark.services


def test_worker_killed_mid_training_is_resumed_by_another_worker(cluster: Cluster) -> None:
    api = cluster.start_api()
    first = cluster.start_worker("worker-a")
    job_id = cluster.submit(api, LONG_JOB)
    cluster.wait_for_checkpoint(api, job_id)
    first.kill9()

    cluster.start_worker("worker-b")
    status = cluster.wait_for(api, job_id)
    messages = cluster.logs(api, job_id)
    assert status["status"] == "succeeded", cluster.diagnostics(api, job_id)
    assert status["attempts"] == 2
    assert status["step"] == status["total_steps"]
    claims = cluster.claims(job_id)
    assert len(claims) == 2 and claims[0] != claims[1], claims  # two different workers
    assert any("stopped sending heartbeats" in m for m in messages)
    assert any(m.startswith("resuming from checkpoint-") for m in messages), messages
    assert sum(m == "job succeeded" for m in messages) == 1


def test_dead_worker_with_no_replacement_fails_the_job_after_the_lease(cluster: Cluster) -> None:
    cluster.env["SKILL_ADAPTER_MAX_ATTEMPTS"] = "1"
    api = cluster.start_api()
    worker = cluster.start_worker("worker-a")
    job_id = cluster.submit(api, LONG_JOB)
    cluster.wait_for(api, job_id, {"running"})
    worker.kill9()

    status = cluster.wait_for(api, job_id, {"queued", "succeeded", "failed", "cancelled"})
    assert status["status"] == "failed", status
    assert status["error"]["code"] == "worker_lost"
    assert "stopped responding" in status["error"]["message"]


def test_dead_worker_with_no_replacement_has_its_job_requeued_while_attempts_remain(cluster: Cluster) -> None:
    api = cluster.start_api()
    worker = cluster.start_worker("worker-a")
    job_id = cluster.submit(api, LONG_JOB)
    cluster.wait_for(api, job_id, {"running"})
    worker.kill9()

    status = cluster.wait_for(api, job_id, {"queued", "succeeded", "failed", "cancelled"})
    assert status["status"] == "queued", status
    assert status["attempts"] == 1
    assert any("stopped sending heartbeats" in m for m in cluster.logs(api, job_id))
    # Back in the queue for whichever worker comes next (the dead one's message is still unacknowledged).
    redis = cluster.redis.client()
    wait_until(lambda: redis.llen("training") >= 1, what="the requeued job's message")
    assert redis.llen("training") == 1
