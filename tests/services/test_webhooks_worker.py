"""Webhooks sent by a real Celery worker process: the API (``serve --no-worker``) only records events; the
worker trains a tiny job and its dispatcher thread signs and POSTs each checkpoint and the terminal state to
a receiver on 127.0.0.1, retrying the delivery the receiver dropped under the same ``webhook-id``."""

from __future__ import annotations

import json
from collections import defaultdict

import httpx
import pytest

from skill_adapter import webhooks
from tests.helpers.webhook_receiver import SECRET, Received, wait_for, webhook_receiver
from tests.services.cluster import QUICK_JOB, Cluster

pytestmark = pytest.mark.services


def test_a_worker_process_signs_and_delivers_the_jobs_webhooks_in_order(cluster: Cluster) -> None:
    cluster.env.update(
        SKILL_ADAPTER_WEBHOOK_SECRET=SECRET,
        SKILL_ADAPTER_WEBHOOK_ALLOW_PRIVATE="true",
        SKILL_ADAPTER_WEBHOOK_RETRY_SECONDS="0.2",
    )
    with webhook_receiver(script=[500]) as receiver:  # the first delivery is dropped
        api = cluster.start_api()
        cluster.start_worker("worker-a")
        job_id = cluster.submit(api, {**QUICK_JOB, "webhook_url": receiver.url, "webhook_checkpoints": True})
        status = cluster.wait_for(api, job_id)
        assert status["status"] == "succeeded", cluster.diagnostics(api, job_id)

        resp = httpx.get(f"{api.base}/api/training/{job_id}/events", params={"limit": 1000}, timeout=10)
        assert resp.status_code == 200, resp.text
        events = resp.json()["data"]
        announced = [e for e in events if e["type"] in {"checkpoint_saved", "succeeded"}]
        assert announced and announced[-1]["type"] == "succeeded"

        def delivered() -> dict[str, list[Received]]:
            by_id: dict[str, list[Received]] = defaultdict(list)
            for request in list(receiver.requests):
                by_id[request.headers["webhook-id"]].append(request)
            return by_id

        wait_for(lambda: len(delivered()) == len(announced), what="a delivery of every announced event")
        # The retry of the dropped delivery: wait for its webhook_delivered event, recorded by the worker.
        wait_for(
            lambda: (
                any(
                    e["type"] == "webhook_delivered"
                    for e in httpx.get(f"{api.base}/api/training/{job_id}/events", params={"limit": 1000}).json()[
                        "data"
                    ]
                )
                and sum(len(v) for v in delivered().values()) == len(announced) + 1
            ),
            what="the dropped delivery retried",
        )

    by_id = delivered()
    for attempts in by_id.values():
        for request in attempts:
            assert request.path == "/hooks/skill-adapter"
            assert request.headers["content-type"].startswith("application/json")
            assert webhooks.verify(SECRET, request.headers, request.body)
            assert not webhooks.verify("whsec_" + "A" * 44, request.headers, request.body)
        assert len({r.body for r in attempts}) == 1  # a retry resends the same message under the same id
    assert sorted(len(v) for v in by_id.values())[-1] == 2  # one message needed a second attempt

    bodies = sorted((json.loads(v[0].body) for v in by_id.values()), key=lambda b: b["data"]["event"]["id"])
    assert [b["data"]["event"]["id"] for b in bodies] == [e["id"] for e in announced]
    assert [b["type"] for b in bodies] == [
        "training.job.checkpoint_saved" if e["type"] == "checkpoint_saved" else "training.job.succeeded"
        for e in announced
    ]
    assert all(b["data"]["job_id"] == job_id for b in bodies)
    assert bodies[-1]["data"]["status"] == "succeeded" and bodies[-1]["data"]["error"] is None

    # The life the events API tells, in order, as recorded by the API and the worker process.
    life = [e["type"] for e in events if not e["type"].startswith("webhook_")]
    assert life[:4] == ["created", "queued", "started", "dataset_built"] and life[-1] == "succeeded"
