"""Submissions under stress: an API killed mid-burst, and 200 concurrent requests from a bounded client.
Every 202 is a job that exists (and runs); every refusal is a 429 or 503 with ``Retry-After``."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.helpers.processes import free_port
from tests.services.cluster import QUICK_JOB, Cluster, wait_until

pytestmark = pytest.mark.services

BURST_THREADS, PER_THREAD = 2, 2


def test_api_killed_and_restarted_during_a_burst(cluster: Cluster) -> None:
    port = free_port()
    api = cluster.start_api(port=port)
    for name in ("worker-a", "worker-b"):
        cluster.start_worker(name)
    accepted: list[str] = []
    lock = threading.Lock()

    def submit_several() -> None:
        for _ in range(PER_THREAD):
            deadline = time.monotonic() + 90
            while True:  # a client that retries until it gets an answer (a lost answer may hide a job)
                try:
                    resp = httpx.post(f"{api.base}/api/training/start", json=QUICK_JOB, timeout=30)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the API never came back"
                    time.sleep(0.2)
            assert resp.status_code == 202, resp.text
            with lock:
                accepted.append(resp.json()["job_id"])
            time.sleep(0.4)

    with ThreadPoolExecutor(BURST_THREADS) as pool:
        futures = [pool.submit(submit_several) for _ in range(BURST_THREADS)]
        wait_until(lambda: len(accepted) >= 2, what="the first submissions")
        cluster.procs[0].kill9()
        killed_with = len(accepted)
        api = cluster.start_api(name="api-restarted", port=port)
        for future in futures:
            future.result()
    assert killed_with < len(accepted) == BURST_THREADS * PER_THREAD  # the burst went on across the restart

    rows = cluster.job_rows()
    assert set(accepted) <= set(rows), "a job that got a 202 does not exist"
    for job_id in rows:  # including any whose answer was lost with the killed API
        status = cluster.wait_for(api, job_id)
        assert status["status"] == "succeeded", cluster.diagnostics(api, job_id)
        assert len(cluster.claims(job_id)) == 1


def test_200_concurrent_submissions_get_202_or_a_retryable_refusal(cluster: Cluster) -> None:
    api = cluster.start_api()

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
        async with httpx.AsyncClient(base_url=api.base, limits=limits, timeout=120) as client:
            return await asyncio.gather(*(client.post("/api/training/start", json=QUICK_JOB) for _ in range(200)))

    answers = asyncio.run(burst())
    codes = [resp.status_code for resp in answers]
    assert set(codes) <= {202, 429, 503}, sorted(set(codes))
    for resp in answers:
        if resp.status_code != 202:
            assert int(resp.headers["Retry-After"]) > 0
            assert resp.json()["error"]["code"]
    accepted = {resp.json()["job_id"] for resp in answers if resp.status_code == 202}
    assert len(accepted) == codes.count(202)
    assert cluster.db.query("SELECT count(*) FROM jobs")[0][0] == len(accepted)
    assert set(cluster.job_rows()) == accepted
    assert cluster.redis.client().llen("training") == len(accepted)  # each accepted job enqueued once
