"""Issue 15's last gap, on the real thing: one key's burst does not keep another key's job waiting.

API + ONE Celery worker process + Redis + Postgres, two keys. Alice bursts (most answers 429: the cap on
active jobs), then Bob submits one job. Bob's job starts as soon as the worker is free, before Alice's
jobs that are still queued; everything accepted ends, nothing is lost, nothing answers 5xx."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.services.cluster import TERMINAL, Cluster, wait_until

pytestmark = pytest.mark.services

ACTIVE_CAP = 2  # Alice gets 2 jobs in; in arrival order (FIFO) Bob's would start 3rd, in turns 2nd
BURST = 30
SMALL_JOB = {"skill_path": "commit-messages/SKILL.md", "num_epochs": 1, "batch_size": 16, "max_seq_length": 128}


@pytest.mark.timeout(1500)  # three small training jobs one after another, on a busy 2-core machine
def test_another_keys_job_runs_before_the_bursting_keys_queued_jobs(cluster: Cluster) -> None:
    cluster.env["SKILL_ADAPTER_MAX_ACTIVE_JOBS_PER_KEY"] = str(ACTIVE_CAP)
    api = cluster.start_api()
    alice, bob = cluster.create_key("alice"), cluster.create_key("bob")
    worker = cluster.start_worker("worker-a")

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=api.base, timeout=120) as client:
            return await asyncio.gather(
                *(client.post("/api/training/start", json=SMALL_JOB, headers=alice) for _ in range(BURST))
            )

    answers = asyncio.run(burst())
    bob_answer = httpx.post(f"{api.base}/api/training/start", json=SMALL_JOB, headers=bob, timeout=60)
    codes = [resp.status_code for resp in answers]
    assert set(codes) <= {202, 429}, sorted(set(codes))  # nothing 5xx
    assert codes.count(202) == ACTIVE_CAP
    assert all(int(resp.headers["Retry-After"]) > 0 for resp in answers if resp.status_code == 429)
    assert bob_answer.status_code == 202, bob_answer.text
    bob_job = bob_answer.json()["job_id"]
    alice_jobs = [resp.json()["job_id"] for resp in answers if resp.status_code == 202]
    accepted = {*alice_jobs, bob_job}
    assert set(cluster.job_rows()) == accepted  # every 202 is a job; every refusal created nothing

    def starts() -> list[str]:
        rows = cluster.db.query("SELECT job_id FROM job_events WHERE type = 'started' ORDER BY id")
        return [row[0] for row in rows]

    # Decided as soon as Bob's job starts: at most the job the worker had already taken when Bob submitted
    # goes before it (in arrival order both of Alice's would).
    wait_until(lambda: bob_job in starts(), timeout=600, what=f"Bob's job to start\n{worker.text()}")
    assert starts().index(bob_job) <= 1, starts()

    def all_ended() -> bool:
        return all(row["status"] in TERMINAL for row in cluster.job_rows().values())

    wait_until(all_ended, timeout=600, what=f"the {len(accepted)} accepted jobs to end\n{worker.text()}")
    rows = cluster.job_rows()
    assert all(row["status"] == "succeeded" for row in rows.values()), rows
    assert all(len(cluster.claims(job_id)) == 1 for job_id in accepted)  # each ran once
    assert sorted(starts()) == sorted(accepted)
    # One message per job, each took one turn: the sweeper (every second here) sent no duplicates, although
    # a message's own job was often still queued while that message's turn ran another job.
    assert worker.text().count("] received") == len(accepted)
    assert cluster.redis.client().llen("training") == 0  # no message left behind
