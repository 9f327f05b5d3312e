"""Postgres unreachable for a few seconds (a proxy in front of it drops every connection): the API answers
503 ``database_unavailable`` with ``Retry-After``, the worker's writes wait and retry, and nothing is lost."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.services.cluster import PG_HOST, PG_PORT, QUICK_JOB, Cluster, wait_until
from tests.services.proxy import TcpProxy

pytestmark = pytest.mark.services

OUTAGE_SECONDS = 5.0
STEPPED_JOB = {**QUICK_JOB, "batch_size": 1, "gradient_accumulation_steps": 1}  # a metric point per example


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    p = TcpProxy((PG_HOST, PG_PORT))
    try:
        yield p
    finally:
        p.close()


def test_postgres_outage_gives_503_and_loses_nothing(proxy: TcpProxy, cluster: Cluster) -> None:
    cluster.env["SKILL_ADAPTER_DATABASE_URL"] = cluster.db.url(port=proxy.port)
    cluster.env["SKILL_ADAPTER_JOB_LEASE_SECONDS"] = "60"  # longer than the outage: no reaping afterwards
    api = cluster.start_api()
    worker = cluster.start_worker("worker-a")
    job_id = cluster.submit(api, STEPPED_JOB)
    wait_until(lambda: cluster.status(api, job_id)["step"] >= 3, what="training to be under way")

    proxy.cut()
    cut_at = time.monotonic()
    answers = []
    while time.monotonic() - cut_at < OUTAGE_SECONDS:
        answers.append(httpx.get(f"{api.base}/api/training/{job_id}/status", timeout=30))
        answers.append(httpx.post(f"{api.base}/api/training/start", json=QUICK_JOB, timeout=30))
        time.sleep(0.5)
    assert cluster.db.query("SELECT status FROM jobs")[0][0] == "running"  # direct, not through the proxy
    proxy.restore()

    assert answers
    for resp in answers:
        assert resp.status_code == 503, (resp.status_code, resp.text)
        assert resp.json()["error"]["code"] == "database_unavailable"
        assert int(resp.headers["Retry-After"]) > 0
        assert resp.json()["error"]["message"]

    status = cluster.wait_for(api, job_id)
    assert status["status"] == "succeeded", cluster.diagnostics(api, job_id)
    assert status["attempts"] == 1  # the worker waited the outage out; it was not taken back
    assert status["step"] == status["total_steps"]
    steps = {row[0] for row in cluster.db.query("SELECT step FROM metric_points WHERE job_id = %s", job_id)}
    assert steps == set(range(1, status["total_steps"] + 1)), "a metric point was lost"
    messages = cluster.logs(api, job_id)
    assert sum(m == "job succeeded" for m in messages) == 1
    assert any("database unavailable during" in m for m in messages) or "database unavailable during" in worker.text()
    # The submissions refused with 503 created nothing.
    assert cluster.db.query("SELECT count(*) FROM jobs")[0][0] == 1
