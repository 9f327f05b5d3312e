"""The events API: a job's life as typed events, paged with after/limit; webhook and tracker fields checked."""

from __future__ import annotations

from typing import Any

from tests.helpers.api import GUIDE_BODY, assert_error, start


def events(client: Any, job_id: str, **params: Any) -> dict[str, Any]:
    resp = client.get(f"/api/training/{job_id}/events", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_events_page_like_the_logs(client: Any) -> None:
    job_id = start(client).json()["job_id"]
    assert client.post(f"/api/training/{job_id}/cancel").status_code == 202
    page = events(client, job_id)
    assert [e["type"] for e in page["data"]] == ["created", "queued", "cancelled"]
    assert page["next"] == page["data"][-1]["id"]
    first = page["data"][0]
    assert set(first) == {"id", "time", "level", "type", "message", "data"}
    assert first["level"] == "info" and first["data"]["skill_name"] == "commit-messages"
    assert page["data"][-1]["level"] == "warning"

    one = events(client, job_id, limit=1)
    assert len(one["data"]) == 1 and one["next"] == first["id"]
    rest = events(client, job_id, after=one["next"])
    assert [e["type"] for e in rest["data"]] == ["queued", "cancelled"]
    assert events(client, job_id, after=page["next"]) == {"data": [], "next": page["next"]}


def test_events_of_unknown_job_is_404(client: Any) -> None:
    assert_error(client.get("/api/training/train-000000000000/events"), 404, "job_not_found")
    job_id = start(client).json()["job_id"]
    assert_error(client.get(f"/api/training/{job_id}/events", params={"limit": 0}), 422, "invalid_parameter")


def test_refused_webhook_urls_are_a_clear_422(client: Any, enqueued: list[str]) -> None:
    for url in ("ftp://example.com/x", "http://127.0.0.1:9/x", "http://169.254.169.254/", "not a url"):
        error = assert_error(start(client, {**GUIDE_BODY, "webhook_url": url}), 422, "invalid_webhook_url")
        assert error.get("field") == "webhook_url"
    assert enqueued == []


def test_webhook_and_tracker_fields_are_kept_in_the_job(client: Any, settings: Any) -> None:
    settings.webhook_allow_private = True
    body = {**GUIDE_BODY, "webhook_url": "http://127.0.0.1:9/hook", "webhook_checkpoints": True}
    resp = start(client, {**body, "report_to": ["tensorboard"]})
    assert resp.status_code == 202, resp.text
    config = client.get(f"/api/training/{resp.json()['job_id']}/status").json()["config"]
    assert config["webhook_url"] == "http://127.0.0.1:9/hook" and config["webhook_checkpoints"] is True
    assert config["report_to"] == ["tensorboard"]
    assert_error(start(client, {**GUIDE_BODY, "report_to": ["wandb"]}), 422, "invalid_parameter")
    assert start(client, {**GUIDE_BODY, "report_to": "none"}).status_code == 202


def test_life_cycle_events_of_a_lost_worker_and_a_failure(client: Any, settings: Any) -> None:
    """started (claim), requeued (the reaper takes the job back), started again, failed with its error."""
    from datetime import timedelta

    from sqlalchemy import update

    from skill_adapter import queued
    from skill_adapter.core.db import session_scope
    from skill_adapter.models import Job, utcnow
    from skill_adapter.queued import TRAINING
    from skill_adapter.worker.supervisor import reap_expired

    job_id = start(client).json()["job_id"]
    with session_scope(settings) as session:
        assert queued.claim(session=session, kind=TRAINING, work_id=job_id, worker_id="host:1")
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(hours=1)))
    assert reap_expired(settings=settings, enqueue=lambda _id: None) == [job_id]
    with session_scope(settings) as session:
        assert queued.claim(session=session, kind=TRAINING, work_id=job_id, worker_id="host:2")
        assert queued.finish(
            session=session,
            kind=TRAINING,
            work_id=job_id,
            status="failed",
            error={"code": "out_of_memory", "message": "Try QLoRA"},
        )
        assert not queued.finish(
            session=session, kind=TRAINING, work_id=job_id, status="succeeded"
        )  # no second terminal event
    page = events(client, job_id)["data"]
    assert [e["type"] for e in page] == ["created", "queued", "started", "requeued", "started", "failed"]
    assert page[3]["level"] == "warning" and page[3]["data"] == {"reason": "worker_lost", "worker_id": "host:1"}
    assert page[4]["data"] == {"worker_id": "host:2", "attempt": 2}
    failed = page[-1]
    assert failed["level"] == "error" and failed["data"]["error"] == {"code": "out_of_memory", "message": "Try QLoRA"}
    assert "out_of_memory" in failed["message"]


def test_evaluation_finished_is_an_event_of_its_job(client: Any, settings: Any) -> None:
    from skill_adapter import crud, queued
    from skill_adapter.core.db import session_scope
    from skill_adapter.queued import EVALUATION

    job_id = start(client).json()["job_id"]
    with session_scope(settings) as session:
        crud.create_evaluation(session=session, evaluation_id="eval-0123456789ab", job_id=job_id, params={})
        assert queued.claim(session=session, kind=EVALUATION, work_id="eval-0123456789ab", worker_id="host:1")
        queued.finish(
            session=session,
            kind=EVALUATION,
            work_id="eval-0123456789ab",
            status="failed",
            error={"code": "held_out_empty", "message": "no held-out examples"},
        )
    last = events(client, job_id)["data"][-1]
    assert last["type"] == "evaluation_finished" and last["level"] == "error"
    assert last["data"]["evaluation_id"] == "eval-0123456789ab" and last["data"]["error"]["code"] == "held_out_empty"
