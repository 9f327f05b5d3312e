"""Webhooks: signed POSTs of a job's terminal states (and, opt-in, its checkpoints), delivered at least once.

The flow is an outbox. Recording a webhook-worthy event (``crud.add_event``) marks it ``pending`` in the same
transaction as the state change. A dispatcher thread in each Celery worker process (never the API's request
path) turns pending events into one ``webhook_deliveries`` row per receiver, then POSTs due deliveries and
retries failures with exponential backoff. Rows survive restarts, so a restarted worker carries on; the
``webhook-id`` stays the same on every retry, so receivers can drop duplicates.

Signing follows the Standard Webhooks convention: ``webhook-signature: v1,<base64 HMAC-SHA256>`` over
``<webhook-id>.<webhook-timestamp>.<body>`` with the key inside ``SKILL_ADAPTER_WEBHOOK_SECRET=whsec_<base64>``.

Receivers are checked twice (at submission and before every attempt): http(s) only, and every address the
host resolves to must be public unless ``SKILL_ADAPTER_WEBHOOK_ALLOW_PRIVATE=true``. The request then goes to
the checked address (no second lookup that could answer differently), redirects are not followed, the
answer's body is read up to a cap, and a whole attempt has a deadline.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from skill_adapter import crud
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.core.errors import InvalidParameterError
from skill_adapter.models import Job, JobEvent, WebhookDelivery, utcnow
from skill_adapter.public_paths import PathShower, shower

log = logging.getLogger(__name__)

EVENT_NAMES = {
    "succeeded": "training.job.succeeded",
    "failed": "training.job.failed",
    "cancelled": "training.job.cancelled",
    "checkpoint_saved": "training.job.checkpoint_saved",
}
MAX_RESPONSE_BYTES = 64 * 1024  # read at most this much of a receiver's answer
MAX_BACKOFF_SECONDS = 3600.0
RESOLVE_TIMEOUT_SECONDS = 5.0
USER_AGENT = "skill-adapter-webhooks/1"

_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-resolve")


class WebhookURLError(InvalidParameterError):
    """A receiver URL that is malformed, not http(s), does not resolve, or points at a refused address."""

    code = "invalid_webhook_url"


# Signing -------------------------------------------------------------------------------------------------


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_<base64>`` secret; ValueError when the secret has another form."""
    text = secret.strip()
    if not text.startswith("whsec_"):
        raise ValueError("must have the Standard Webhooks form whsec_<base64 of at least 24 random bytes>")
    try:
        key = base64.b64decode(text[len("whsec_") :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the part after whsec_ is not valid base64") from None
    if len(key) < 24:
        raise ValueError("the key after whsec_ must be at least 24 bytes (e.g. base64 of 32 random bytes)")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, *, tolerance: float = 300) -> bool:
    """Check a delivery as a receiver would (any ``v1`` signature matches; timestamp within ``tolerance``)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp = lowered.get("webhook-id", ""), lowered.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit() or abs(time.time() - int(stamp)) > tolerance:
        return False
    expected = sign(secret, msg_id, int(stamp), body)
    return any(hmac.compare_digest(expected, sig) for sig in lowered.get("webhook-signature", "").split())


# Receiver checks -----------------------------------------------------------------------------------------


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, private, link-local (cloud metadata), shared, reserved, multicast: anything not global."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def _resolve(host: str, port: int) -> list[str]:
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=RESOLVE_TIMEOUT_SECONDS)
    except FutureTimeout:
        raise WebhookURLError(f"webhook host {host!r} did not resolve in time", field="webhook_url") from None
    except OSError as exc:
        raise WebhookURLError(f"webhook host {host!r} does not resolve ({exc})", field="webhook_url") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    addresses: list[str]


def check_url(url: str, *, allow_private: bool) -> Target:
    """Parse and vet a receiver URL; every address its host resolves to must be allowed. Raises WebhookURLError."""
    if len(url) > 2048:
        raise WebhookURLError("webhook_url is longer than 2048 characters", field="webhook_url")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise WebhookURLError(f"webhook_url is not a valid URL ({exc})", field="webhook_url") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise WebhookURLError(
            f"webhook_url must be an http:// or https:// URL with a host; got {url[:200]!r}", field="webhook_url"
        )
    scheme = parts.scheme.lower()
    port = port or (443 if scheme == "https" else 80)
    host = parts.hostname
    addresses = _resolve(host, port)
    if not allow_private:
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if _refused(address):
                raise WebhookURLError(
                    f"webhook_url host {host!r} resolves to {address}, a loopback, private, link-local or "
                    "metadata address; receivers must be public (an operator may allow private ones with "
                    "SKILL_ADAPTER_WEBHOOK_ALLOW_PRIVATE=true)",
                    field="webhook_url",
                )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=addresses)


def shown_url(url: str) -> str:
    """A receiver URL fit for events and logs: without credentials or query (they may hold tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


# Sending -------------------------------------------------------------------------------------------------


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to an address already checked, while the Host header names the URL's host."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Attempt:
    ok: bool
    status: int | None
    error: str | None
    permanent: bool = False  # a refused receiver: retrying cannot help


def post(target: Target, headers: dict[str, str], body: bytes, *, timeout: float) -> Attempt:
    """POST ``body`` to the first reachable checked address of ``target``, within ``timeout`` overall."""
    deadline = time.monotonic() + timeout
    last_error = "no address"
    for address in target.addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        conn_class = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
        conn = conn_class(target.host, target.port, address=address.split("%", 1)[0], timeout=remaining)
        # A receiver that trickles its answer byte by byte would dodge the per-read timeout: shut it at the deadline.
        watchdog = threading.Timer(remaining, _shutdown, args=(conn,))
        watchdog.start()
        try:
            conn.request("POST", target.path, body=body, headers=headers)
            response = conn.getresponse()
            response.read(MAX_RESPONSE_BYTES)  # the rest, however large, is never read
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            last_error = "timed out" if time.monotonic() >= deadline else f"{type(exc).__name__}: {exc}"
            continue
        finally:
            watchdog.cancel()
            conn.close()
        if 200 <= status < 300:
            return Attempt(True, status, None)
        if 300 <= status < 400:
            return Attempt(False, status, f"HTTP {status}: redirects are not followed; give the final URL")
        return Attempt(False, status, f"HTTP {status}")
    return Attempt(False, None, last_error)


def _shutdown(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def backoff(attempts: int, *, base: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones: base, 2x, 4x, ... at most an hour."""
    return float(min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS))


# The outbox ----------------------------------------------------------------------------------------------


def receivers(job: Job, event_type: str, settings: Settings) -> list[str]:
    """Who hears about this event: the job's own ``webhook_url`` and the server-wide ones.

    Checkpoints only reach receivers of a job that asked for them (``webhook_checkpoints``).
    """
    config = job.config or {}
    if event_type == "checkpoint_saved" and not config.get("webhook_checkpoints"):
        return []
    urls = [config["webhook_url"]] if config.get("webhook_url") else []
    return list(dict.fromkeys(urls + settings.webhook_url_list))


def payload(job: Job, event: JobEvent, shown: PathShower) -> dict[str, Any]:
    """The JSON body: ``{"type", "timestamp", "data"}`` as the Standard Webhooks convention suggests; server
    paths in it are named relative to their roots, as the API names them."""
    error = None
    if job.error_code:
        error = {"code": job.error_code, "message": shown.text(job.error_message or "")}
    return {
        "type": EVENT_NAMES.get(event.type, f"training.job.{event.type}"),
        "timestamp": event.time.isoformat(),
        "data": {
            "job_id": job.id,
            "status": job.status,
            "skill_name": job.skill_name,
            "event": {
                "id": event.id,
                "time": event.time.isoformat(),
                "level": event.level,
                "type": event.type,
                "message": shown.text(event.message),
                "data": shown.value(event.data or {}),
            },
            "progress": job.progress,
            "step": job.step,
            "total_steps": job.total_steps,
            "loss": job.loss,
            "eval_loss": job.eval_loss,
            "adapter_path": shown.path(job.adapter_path),
            "error": error,
            "created_at": job.created_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        },
    }


def fan_out(settings: Settings, *, limit: int = 100) -> int:
    """Turn pending webhook events into deliveries (one per receiver); returns how many deliveries."""
    created = 0
    with session_scope(settings) as session:
        ids = session.scalars(
            select(JobEvent.id).where(JobEvent.webhook_state == "pending").order_by(JobEvent.id).limit(limit)
        ).all()
    for event_id in ids:
        with session_scope(settings) as session:
            taken = session.execute(
                update(JobEvent)
                .where(JobEvent.id == event_id, JobEvent.webhook_state == "pending")
                .values(webhook_state="done")
                .execution_options(synchronize_session=False)
            )
            if not taken.rowcount:  # type: ignore[attr-defined]
                continue  # another worker's dispatcher has it
            event = session.get(JobEvent, event_id)
            job = session.get(Job, event.job_id) if event is not None else None
            if event is None or job is None:
                continue
            body = json.dumps(payload(job, event, shower(settings)), separators=(",", ":"), ensure_ascii=False)
            for url in receivers(job, event.type, settings):
                session.add(
                    WebhookDelivery(
                        id=f"msg_{uuid.uuid4().hex}",
                        job_id=job.id,
                        event_id=event.id,
                        url=url,
                        event=EVENT_NAMES.get(event.type, event.type),
                        body=body,
                        status="pending",
                        attempts=0,
                        next_attempt_at=utcnow(),
                        created_at=utcnow(),
                    )
                )
                created += 1
    return created


def _claim_due(settings: Settings, *, limit: int) -> list[WebhookDelivery]:
    """Due deliveries this dispatcher now holds: each claim pushes ``next_attempt_at`` past the attempt's end
    (compare-and-set), so no other dispatcher sends it meanwhile and a crash mid-attempt only delays it."""
    lease = timedelta(seconds=settings.webhook_timeout_seconds * 2 + 30)
    claimed = []
    with session_scope(settings) as session:
        due = session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= utcnow())
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        ).all()
        for delivery in due:
            result = session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery.id,
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at == delivery.next_attempt_at,
                )
                .values(next_attempt_at=utcnow() + lease, attempts=WebhookDelivery.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount:  # type: ignore[attr-defined]
                claimed.append(delivery)
        session.flush()
        for delivery in claimed:
            session.refresh(delivery)
            session.expunge(delivery)
    return claimed


def attempt_delivery(delivery: WebhookDelivery, settings: Settings) -> Attempt:
    """One attempt: re-check the receiver, sign, POST."""
    try:
        target = check_url(delivery.url, allow_private=settings.webhook_allow_private)
    except WebhookURLError as exc:
        permanent = "resolves to" in exc.message  # a lookup failure may be temporary; a refused address is not
        return Attempt(False, None, exc.message, permanent=permanent)
    body = delivery.body.encode()
    stamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery.id,
        "webhook-timestamp": str(stamp),
    }
    if settings.webhook_secret:
        headers["webhook-signature"] = sign(settings.webhook_secret, delivery.id, stamp, body)
    return post(target, headers, body, timeout=settings.webhook_timeout_seconds)


def record_attempt(session: Session, delivery: WebhookDelivery, outcome: Attempt, settings: Settings) -> None:
    """The delivery's new state and a job event saying what happened (never anything that touches the job)."""
    where = shown_url(delivery.url)
    data = {"webhook_id": delivery.id, "url": where, "event": delivery.event, "attempt": delivery.attempts}
    row = update(WebhookDelivery).where(WebhookDelivery.id == delivery.id)
    if outcome.ok:
        session.execute(row.values(status="delivered", delivered_at=utcnow(), last_error=None))
        crud.add_event(
            session=session,
            job_id=delivery.job_id,
            type="webhook_delivered",
            message=f"Webhook {delivery.event} delivered to {where} "
            f"(HTTP {outcome.status}, attempt {delivery.attempts})",
            data={**data, "http_status": outcome.status},
        )
        return
    error = (outcome.error or "failed")[:500]
    if outcome.permanent or delivery.attempts >= settings.webhook_max_attempts:
        session.execute(row.values(status="failed", last_error=error))
        crud.add_event(
            session=session,
            job_id=delivery.job_id,
            type="webhook_failed",
            level="error",
            message=f"Webhook {delivery.event} to {where} given up after {delivery.attempts} attempt(s): {error}",
            data={**data, "error": error, "http_status": outcome.status},
        )
        return
    delay = backoff(delivery.attempts, base=settings.webhook_retry_seconds)
    session.execute(row.values(next_attempt_at=utcnow() + timedelta(seconds=delay), last_error=error))
    crud.add_event(
        session=session,
        job_id=delivery.job_id,
        type="webhook_retrying",
        level="warning",
        message=f"Webhook {delivery.event} to {where} failed (attempt {delivery.attempts}: {error}); "
        f"retrying in {delay:.3g} s",
        data={**data, "error": error, "http_status": outcome.status, "retry_in_seconds": delay},
    )


def deliver_due(settings: Settings, *, pool: ThreadPoolExecutor | None = None, limit: int = 16) -> int:
    """Attempt every due delivery (in parallel on ``pool``) and record the outcomes; returns how many."""
    claimed = _claim_due(settings, limit=limit)
    if not claimed:
        return 0

    def one(delivery: WebhookDelivery) -> None:
        try:
            outcome = attempt_delivery(delivery, settings)
        except Exception as exc:  # a bug or an odd answer: counted as a failed attempt, never a dead dispatcher
            outcome = Attempt(False, None, f"{type(exc).__name__}: {exc}")
        with session_scope(settings) as session:
            record_attempt(session, delivery, outcome, settings)

    if pool is None:
        for delivery in claimed:
            one(delivery)
    else:
        for future in [pool.submit(one, delivery) for delivery in claimed]:
            future.result()
    return len(claimed)


class Dispatcher:
    """The worker's webhook thread: fan out pending events, deliver what is due, every ``interval`` seconds."""

    def __init__(self, settings: Settings, *, interval: float = 1.0) -> None:
        self.settings = settings
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-send")

    def run_once(self) -> int:
        fan_out(self.settings)
        return deliver_due(self.settings, pool=self._pool)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception as exc:  # the database is down: try again next round
                log.warning("webhook dispatcher: %s", exc)
                busy = 0
            if not busy:
                self._stop.wait(self.interval)

    def start(self) -> Dispatcher:
        self._thread = threading.Thread(target=self._run, name="webhook-dispatcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.webhook_timeout_seconds + 5)
        self._pool.shutdown(wait=False, cancel_futures=True)


def install(settings: Settings, *, starter: Callable[[Settings], Dispatcher] | None = None) -> None:
    """Run a dispatcher in the Celery worker process from ``worker_ready`` to ``worker_shutdown``."""
    from celery import signals

    current: list[Dispatcher] = []

    @signals.worker_ready.connect(weak=False)
    def _on_ready(**_: Any) -> None:
        current.append((starter or (lambda s: Dispatcher(s).start()))(settings))

    @signals.worker_shutdown.connect(weak=False)
    def _on_shutdown(**_: Any) -> None:
        for dispatcher in current:
            dispatcher.stop()
