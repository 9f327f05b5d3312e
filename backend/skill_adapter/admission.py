"""Admission control: per key, a cap on active work and on submissions per minute; server-wide, on the queue.

Jobs and evaluations both count: each is a queued job of its own on a worker. Admission runs inside
the transaction that inserts the new row, after it has taken the admission lock (one row every submission
updates: SQLite's write lock, or Postgres's row lock, held until the commit), so concurrent submissions are
counted one after another and a burst cannot overshoot a cap.

The API admits in batches (:func:`admit_and_insert`, a group commit): a request thread prepares its row
(the skill parsed, the parameters checked) and hands an ``insert`` to its process's admission thread, which
takes the lock once for every submission waiting at that moment, counts once per owner, decides each in
arrival order (counting the ones it admitted), inserts, and commits them together. One submission at a time
held the lock for about 12 ms on two busy cores (lock, six counts, insert, commit), which capped a burst at
about 80 submissions/s; a batch pays the lock, the counts and the commit once. Idempotency keys are checked
under the lock too, so a key sent twice at once makes one job (the other submission gets it back).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_factory
from skill_adapter.core.errors import SkillAdapterError
from skill_adapter.models import AdmissionLock, Evaluation, Job, utcnow

WINDOW = timedelta(seconds=60)
ACTIVE_RETRY_AFTER_SECONDS = 30  # nobody knows when a running job ends: a polite interval
QUEUE_FULL_RETRY_AFTER_SECONDS = 30
ACTIVE = ("queued", "running")
MAX_BATCH = 64  # submissions admitted in one transaction at most
ADMISSION_PATIENCE_SECONDS = 60.0  # a request waits this long for its batch, then gets a 503

log = logging.getLogger(__name__)


class TooManyRequestsError(SkillAdapterError):
    """Past a per-key cap: nothing was created. ``retry_after_seconds`` becomes the Retry-After header."""

    code = "rate_limited"
    status_code = 429


class QueueFullError(SkillAdapterError):
    """The server's queue is at its cap: nothing was created."""

    code = "queue_full"
    status_code = 503


class AdmissionBusyError(SkillAdapterError):
    """The submission waited too long for admission (the database is slow or unreachable): nothing was created."""

    code = "admission_busy"
    status_code = 503


def take_lock(session: Session) -> None:
    """Serialise admissions until this transaction ends (the row exists from migration 0005 on)."""
    result = session.execute(
        update(AdmissionLock)
        .where(AdmissionLock.id == 1)
        .values(admitted=AdmissionLock.admitted + 1)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        session.add(AdmissionLock(id=1, admitted=1))
        session.flush()


def _owned(column: object, owner: str | None) -> object:
    return column.is_(None) if owner is None else column == owner  # type: ignore[attr-defined]


def _counts(session: Session, *, owner: str | None, since: datetime) -> dict[str, Any]:
    """What the caps look at, over jobs and evaluations together, in one round trip to the database.

    Each figure is a scalar sub-query of its own, so each can use its own index (owner, status, created_at).
    """
    columns: dict[str, list[Any]] = {"active": [], "recent": [], "oldest": [], "queued": []}
    for table in (Job, Evaluation):
        owned = _owned(table.owner, owner)
        window = and_(owned, table.created_at >= since)  # type: ignore[arg-type]
        columns["active"].append(
            select(func.count()).select_from(table).where(owned, table.status.in_(ACTIVE)).scalar_subquery()  # type: ignore[arg-type]
        )
        columns["recent"].append(select(func.count()).select_from(table).where(window).scalar_subquery())
        columns["oldest"].append(select(func.min(table.created_at)).where(window).scalar_subquery())
        columns["queued"].append(
            select(func.count()).select_from(table).where(table.status == "queued").scalar_subquery()
        )
    names = [(name, i) for name in columns for i in range(2)]
    row = session.execute(select(*(columns[name][i].label(f"{name}_{i}") for name, i in names))).one()
    values = dict(zip(names, row, strict=True))
    firsts = [v for v in (values[("oldest", 0)], values[("oldest", 1)]) if v is not None]
    return {
        "active": (values[("active", 0)] or 0) + (values[("active", 1)] or 0),
        "recent": (values[("recent", 0)] or 0) + (values[("recent", 1)] or 0),
        "oldest": min(firsts) if firsts else None,
        "queued": (values[("queued", 0)] or 0) + (values[("queued", 1)] or 0),
    }


def _decide(counts: dict[str, Any], *, owner: str | None, settings: Settings, now: datetime) -> None:
    """Raise the refusal these counts call for, if any."""
    who = f"the key {owner!r}" if owner is not None else "this server's (keyless) callers"
    active = counts["active"]
    cap = settings.max_active_jobs_per_key
    if active >= cap:
        raise TooManyRequestsError(
            f"{who} already has {active} queued or running jobs and evaluations, the most allowed "
            f"(SKILL_ADAPTER_MAX_ACTIVE_JOBS_PER_KEY={cap}); wait for one to finish or cancel one, then retry",
            code="too_many_active_jobs",
            retry_after_seconds=ACTIVE_RETRY_AFTER_SECONDS,
            limit=cap,
        )
    recent, oldest = counts["recent"], counts["oldest"]
    per_minute = settings.submissions_per_minute
    if recent >= per_minute:
        wait = WINDOW - (now - oldest) if oldest is not None else WINDOW
        retry_after = max(1, math.ceil(wait.total_seconds()))
        raise TooManyRequestsError(
            f"{who} submitted {recent} jobs and evaluations in the last minute, the most allowed "
            f"(SKILL_ADAPTER_SUBMISSIONS_PER_MINUTE={per_minute}); retry in {retry_after} s",
            code="rate_limited",
            retry_after_seconds=retry_after,
            limit=per_minute,
        )
    queued = counts["queued"]
    depth = settings.max_queue_depth
    if queued >= depth:
        raise QueueFullError(
            f"The server's queue is full ({queued} jobs and evaluations waiting, SKILL_ADAPTER_MAX_QUEUE_DEPTH="
            f"{depth}); nothing was created, retry in {QUEUE_FULL_RETRY_AFTER_SECONDS} s",
            retry_after_seconds=QUEUE_FULL_RETRY_AFTER_SECONDS,
            limit=depth,
        )


# --- Batched admission (the API's path) -------------------------------------------------------------------


@dataclass
class _Request:
    settings: Settings
    owner: str | None
    key: str | None
    insert: Callable[[Session], Any]
    find: Callable[[Session, str], Any] | None
    after_commit: Callable[[Any], object] | None = None
    state: str = "waiting"  # -> "taken" by the admission thread, or "abandoned" by a request that gave up
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    replayed: bool = False
    error: BaseException | None = None

    def reset(self) -> None:
        self.result, self.replayed, self.error = None, False, None


class _Admitter:
    """The thread of one process and database that admits what request threads hand it, in batches. It ends
    after a minute without work (a later submission starts another)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.inbox: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="admission", daemon=True)

    def _run(self) -> None:
        while True:
            try:
                first = self.inbox.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with _ADMITTERS_LOCK:
                    if self.inbox.empty():  # puts happen under this lock: none can slip in now
                        _ADMITTERS.pop(self.url, None)
                        return
                continue
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            with _ADMITTERS_LOCK:  # a request that gave up waiting is not admitted behind its back
                batch = [r for r in batch if r.state == "waiting"]
                for request in batch:
                    request.state = "taken"
            if not batch:
                continue
            try:
                self._admit(batch)
            except BaseException as exc:
                if len(batch) == 1:
                    batch[0].reset()
                    batch[0].error = exc
                else:  # one row's error must not fail the others: admit each on its own
                    log.warning("admission: a batch of %d failed (%s); admitting them one by one", len(batch), exc)
                    for request in batch:
                        try:
                            request.reset()
                            self._admit([request])
                        except BaseException as one:
                            request.reset()
                            request.error = one
            for request in batch:
                request.done.set()

    @staticmethod
    def _admit(batch: list[_Request]) -> None:
        """Lock, count once per owner, decide each request in order, insert the admitted, commit them together."""
        with session_factory(batch[0].settings)() as session:
            take_lock(session)
            now = utcnow()
            counts: dict[str | None, dict[str, Any]] = {}
            queued: int | None = None
            made: dict[str, Any] = {}  # idempotency key -> the row admitted for it in this batch
            for request in batch:
                if request.key is not None and request.find is not None:
                    earlier = made.get(request.key)
                    if earlier is None:
                        earlier = request.find(session, request.key)
                    if earlier is not None:
                        request.result, request.replayed = earlier, True
                        continue
                if request.owner not in counts:
                    counts[request.owner] = _counts(session, owner=request.owner, since=now - WINDOW)
                mine = counts[request.owner]
                if queued is None:
                    queued = int(mine["queued"])
                mine["queued"] = queued
                try:
                    _decide(mine, owner=request.owner, settings=request.settings, now=now)
                except SkillAdapterError as exc:
                    request.error = exc
                    continue
                request.result = request.insert(session)  # flushed with the others at the commit
                mine["active"] += 1
                mine["recent"] += 1
                mine["oldest"] = mine["oldest"] or now
                queued += 1
                if request.key is not None:
                    made[request.key] = request.result
            session.commit()
        # Right after the commit, on this thread: the request threads may wait seconds for the GIL behind a
        # burst, and a row committed but not yet sent for longer than REQUEUE_AFTER_SECONDS looks lost to the
        # sweeper, which would send it a second time.
        for request in batch:
            if request.after_commit is not None and request.error is None and not request.replayed:
                try:
                    request.after_commit(request.result)
                except Exception as exc:  # committed: the sweeper sends what was not sent
                    log.warning("admission: after the commit of %r: %s", request.result, exc)


IDLE_SECONDS = 60.0
_ADMITTERS: dict[str, _Admitter] = {}
_ADMITTERS_LOCK = threading.Lock()


def admit_and_insert(
    *,
    settings: Settings,
    owner: str | None,
    insert: Callable[[Session], Any],
    key: str | None = None,
    find: Callable[[Session, str], Any] | None = None,
    after_commit: Callable[[Any], object] | None = None,
) -> tuple[Any, bool]:
    """Admit one submission of ``owner`` and commit the row that ``insert(session)`` adds, batched with the
    others waiting in this process (see the module's docstring). Returns ``(row, replayed)``: where the
    idempotency ``key`` was already used (``find(session, key)`` finds its row, under the lock), that row and
    True, and nothing is inserted. A refusal raises (429 per key, 503 for the server); nothing was created then.
    ``after_commit(row)`` runs once the row is committed (the enqueue), not for a replay or a refusal.

    The row comes back detached from the admission's session, its columns loaded.
    """
    request = _Request(settings=settings, owner=owner, key=key, insert=insert, find=find, after_commit=after_commit)
    url = settings.resolved_database_url
    with _ADMITTERS_LOCK:
        admitter = _ADMITTERS.get(url)
        if admitter is None:
            admitter = _ADMITTERS[url] = _Admitter(url)
            admitter.thread.start()
        admitter.inbox.put(request)
    if not request.done.wait(ADMISSION_PATIENCE_SECONDS):
        with _ADMITTERS_LOCK:
            if request.state == "waiting":
                request.state = "abandoned"
        if request.state == "abandoned":
            raise AdmissionBusyError(
                f"The submission waited {ADMISSION_PATIENCE_SECONDS:.0f} s for admission and was not admitted "
                "(the database is slow or unreachable); nothing was created, retry shortly",
                retry_after_seconds=QUEUE_FULL_RETRY_AFTER_SECONDS,
            )
        request.done.wait()  # taken: the database's own timeouts bound the rest
    if request.error is not None:
        raise request.error
    return request.result, request.replayed
