"""Webhooks: Standard Webhooks signatures, receiver checks (SSRF), and delivery to a real receiver on
127.0.0.1 with retries, timeouts, huge answers and redirects, through the worker's dispatcher."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from skill_adapter import crud, queued, webhooks
from skill_adapter.core.config import ConfigError, Settings, load_settings
from skill_adapter.core.db import session_scope
from skill_adapter.models import WebhookDelivery
from skill_adapter.queued import TRAINING
from tests.helpers.jobs import make_job
from tests.helpers.webhook_receiver import SECRET, wait_for, webhook_receiver


def test_signature_matches_the_standard_webhooks_reference_vector() -> None:
    # The example of the Standard Webhooks specification and its reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    signature = webhooks.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_secret_must_have_the_whsec_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKILL_ADAPTER_WEBHOOK_SECRET", "hunter2")
    with pytest.raises(ConfigError, match="SKILL_ADAPTER_WEBHOOK_SECRET"):
        load_settings(_env_file=None)
    monkeypatch.setenv("SKILL_ADAPTER_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("SKILL_ADAPTER_WEBHOOK_URLS", "https://hooks.example.com/a, ftp://x")
    with pytest.raises(ConfigError, match="SKILL_ADAPTER_WEBHOOK_URLS"):
        load_settings(_env_file=None)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "http:///nohost",
        "http://127.0.0.1:8000/x",
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://192.168.0.10/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/x",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://[fd00:ec2::254]/x",
        "http://0.0.0.0/x",
    ],
)
def test_refused_receivers(url: str) -> None:
    with pytest.raises(webhooks.WebhookURLError):
        webhooks.check_url(url, allow_private=False)


def test_private_receivers_allowed_when_the_operator_says_so() -> None:
    target = webhooks.check_url("http://127.0.0.1:9/hook?t=1", allow_private=True)
    assert target.addresses == ["127.0.0.1"] and target.path == "/hook?t=1" and target.port == 9
    assert webhooks.check_url("https://93.184.215.14/x", allow_private=False).port == 443  # a public address
    with pytest.raises(webhooks.WebhookURLError, match="http"):
        webhooks.check_url("gopher://127.0.0.1/", allow_private=True)


def test_backoff_doubles_and_is_capped() -> None:
    assert [webhooks.backoff(n, base=5) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert webhooks.backoff(40, base=5) == webhooks.MAX_BACKOFF_SECONDS


_queued_job = make_job  # the job row, queued; nothing runs it


def _cancel(settings: Settings, job_id: str) -> None:
    with session_scope(settings) as session:
        queued.request_cancel(session=session, kind=TRAINING, work=crud.get_job(session=session, job_id=job_id))


def _events(settings: Settings, job_id: str) -> list[Any]:
    with session_scope(settings) as session:
        return list(crud.read_events(session=session, job_id=job_id, after=0, limit=1000))


def _deliveries(settings: Settings, job_id: str) -> list[WebhookDelivery]:
    with session_scope(settings) as session:
        rows = session.query(WebhookDelivery).filter(WebhookDelivery.job_id == job_id).all()
        session.expunge_all()
        return rows


def _fast(settings: Settings, **more: Any) -> Settings:
    values = {
        "webhook_allow_private": True,
        "webhook_secret": SECRET,
        "webhook_retry_seconds": 0.05,
        "webhook_timeout_seconds": 2.0,
        **more,
    }
    return settings.model_copy(update=values)


def test_dispatcher_retries_a_failing_receiver_with_the_same_id_and_valid_signatures(
    settings: Settings, skills_root: Path
) -> None:
    settings = _fast(settings)
    with webhook_receiver(script=[500, 503]) as receiver:
        job_id = _queued_job(settings, skills_root, webhook_url=receiver.url)
        _cancel(settings, job_id)
        dispatcher = webhooks.Dispatcher(settings, interval=0.05).start()
        try:
            wait_for(lambda: len(receiver.requests) >= 3, what="three delivery attempts")
            wait_for(
                lambda: any(e.type == "webhook_delivered" for e in _events(settings, job_id)), what="delivered event"
            )
        finally:
            dispatcher.stop()
    first = receiver.requests[0]
    assert len(receiver.requests) == 3, "delivered once the receiver answered 2xx, then never again"
    assert {r.headers["webhook-id"] for r in receiver.requests} == {first.headers["webhook-id"]}
    assert first.headers["webhook-id"].startswith("msg_") and first.path == "/hooks/skill-adapter"
    for request in receiver.requests:
        assert webhooks.verify(SECRET, request.headers, request.body)
        assert request.body == first.body
    body = json.loads(first.body)
    assert body["type"] == "training.job.cancelled"
    assert body["data"]["job_id"] == job_id and body["data"]["status"] == "cancelled"
    assert body["data"]["event"]["type"] == "cancelled"
    types = [e.type for e in _events(settings, job_id)]
    assert types[:3] == ["created", "queued", "cancelled"]
    assert types.count("webhook_retrying") == 2 and types[-1] == "webhook_delivered"
    (delivery,) = _deliveries(settings, job_id)
    assert delivery.status == "delivered" and delivery.attempts == 3
    # A tampered body does not verify.
    assert not webhooks.verify(SECRET, first.headers, first.body.replace(b"cancelled", b"succeeded"))


def test_bad_receivers_are_handled_and_logged_as_events(settings: Settings, skills_root: Path) -> None:
    """A receiver that hangs, one that answers a huge body, and a redirect to the metadata address."""
    settings = _fast(settings, webhook_timeout_seconds=0.5, webhook_max_attempts=2)
    with (
        webhook_receiver(script=["hang", "huge"]) as slow,
        webhook_receiver(script=[("redirect", "http://169.254.169.254/latest/meta-data/")] * 2) as redirecting,
    ):
        settings = settings.model_copy(update={"webhook_urls": redirecting.url})
        job_id = _queued_job(settings, skills_root, webhook_url=slow.url)
        _cancel(settings, job_id)
        dispatcher = webhooks.Dispatcher(settings, interval=0.05).start()
        try:
            wait_for(  # one read per check: two reads could see one row settled, then two rows
                lambda: len(rows := _deliveries(settings, job_id)) == 2 and all(d.status != "pending" for d in rows),
                what="both deliveries settled",
            )
        finally:
            dispatcher.stop()
    by_url = {d.url: d for d in _deliveries(settings, job_id)}
    assert by_url[slow.url].status == "delivered" and by_url[slow.url].attempts == 2  # timed out, then huge 200
    assert by_url[redirecting.url].status == "failed" and "redirect" in (by_url[redirecting.url].last_error or "")
    events = _events(settings, job_id)
    retrying = [e for e in events if e.type == "webhook_retrying"]
    assert any("timed out" in e.data["error"] for e in retrying), [e.message for e in retrying]
    failed = [e for e in events if e.type == "webhook_failed"]
    assert len(failed) == 1 and failed[0].level == "error" and "redirect" in failed[0].message
    with session_scope(settings) as session:
        assert crud.get_job(session=session, job_id=job_id).status == "cancelled"


def test_a_refused_receiver_is_refused_again_at_delivery(settings: Settings, skills_root: Path) -> None:
    """A server-wide receiver on loopback without ALLOW_PRIVATE: never contacted, given up at once."""
    with webhook_receiver() as receiver:
        settings = _fast(settings, webhook_allow_private=False, webhook_urls=receiver.url)
        job_id = _queued_job(settings, skills_root)
        _cancel(settings, job_id)
        dispatcher = webhooks.Dispatcher(settings, interval=0.05)
        dispatcher.run_once()
        dispatcher.stop()
    assert receiver.requests == []
    (delivery,) = _deliveries(settings, job_id)
    assert delivery.status == "failed" and delivery.attempts == 1
    (failed,) = [e for e in _events(settings, job_id) if e.type == "webhook_failed"]
    assert "loopback" in failed.message


def test_events_without_receivers_make_no_deliveries(settings: Settings, skills_root: Path) -> None:
    job_id = _queued_job(settings, skills_root)
    _cancel(settings, job_id)
    assert webhooks.fan_out(settings) == 0
    assert _deliveries(settings, job_id) == []
    assert webhooks.fan_out(settings) == 0  # the event is marked done, not fanned out again


def test_the_worker_runs_a_dispatcher_from_ready_to_shutdown(settings: Settings) -> None:
    """``worker.celery_app`` installs this: a dispatcher starts with the Celery worker and stops with it."""
    from celery import signals

    started: list[Any] = []

    class Recorder:
        stopped = False

        def stop(self) -> None:
            self.stopped = True

    def starter(s: Settings) -> Any:
        started.append(Recorder())
        return started[-1]

    webhooks.install(settings, starter=starter)
    signals.worker_ready.send(sender=None)
    assert len(started) == 1 and not started[0].stopped
    signals.worker_shutdown.send(sender=None)
    assert started[0].stopped


def test_a_receiver_that_is_down_is_retried_later(settings: Settings, skills_root: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = _fast(settings, webhook_retry_seconds=60)
    job_id = _queued_job(settings, skills_root, webhook_url=f"http://127.0.0.1:{port}/down")
    _cancel(settings, job_id)
    dispatcher = webhooks.Dispatcher(settings)
    assert dispatcher.run_once() == 1
    assert dispatcher.run_once() == 0  # not due again for a minute
    dispatcher.stop()
    (delivery,) = _deliveries(settings, job_id)
    assert delivery.status == "pending" and delivery.attempts == 1 and "Connection" in (delivery.last_error or "")
    (retrying,) = [e for e in _events(settings, job_id) if e.type == "webhook_retrying"]
    assert retrying.data["retry_in_seconds"] == 60
