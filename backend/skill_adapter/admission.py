"""Admission control: per key, a cap on active work and on submissions per minute; server-wide, on the queue.

Jobs and evaluations both count: each is a queued job of its own on a worker. :func:`admit` runs inside
the transaction that inserts the new row, after it has taken the admission lock (one row every submission
updates: SQLite's write lock, or Postgres's row lock, held until the commit), so concurrent submissions are
counted one after another and a burst cannot overshoot a cap.
"""

from __future__ import annotations

import math
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from skill_adapter.core.config import Settings
from skill_adapter.core.errors import SkillAdapterError
from skill_adapter.models import AdmissionLock, Evaluation, Job, utcnow

WINDOW = timedelta(seconds=60)
ACTIVE_RETRY_AFTER_SECONDS = 30  # nobody knows when a running job ends: a polite interval
QUEUE_FULL_RETRY_AFTER_SECONDS = 30
ACTIVE = ("queued", "running")


class TooManyRequestsError(SkillAdapterError):
    """Past a per-key cap: nothing was created. ``retry_after_seconds`` becomes the Retry-After header."""

    code = "rate_limited"
    status_code = 429


class QueueFullError(SkillAdapterError):
    """The server's queue is at its cap: nothing was created."""

    code = "queue_full"
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


def admit(*, session: Session, owner: str | None, settings: Settings) -> None:
    """Refuse a new job or evaluation of ``owner`` past a cap (429 per key, 503 for the server).

    Call it in the session that then inserts the row and commits; it takes the admission lock first. A
    refusal rolls the session back before it raises, releasing the lock at once: left to the session's
    close (after the answer, on a pool thread), the lock would be waited on by every other submission's
    thread, and with the pool full of them the close would never get a thread (seen: a 200-request burst hung).
    """
    take_lock(session)
    try:
        _check(session=session, owner=owner, settings=settings)
    except BaseException:
        session.rollback()
        raise


def _check(*, session: Session, owner: str | None, settings: Settings) -> None:
    who = f"the key {owner!r}" if owner is not None else "this server's (keyless) callers"
    active = 0
    for table in (Job, Evaluation):
        active += (
            session.scalar(
                select(func.count()).select_from(table).where(_owned(table.owner, owner), table.status.in_(ACTIVE))  # type: ignore[arg-type]
            )
            or 0
        )
    cap = settings.max_active_jobs_per_key
    if active >= cap:
        raise TooManyRequestsError(
            f"{who} already has {active} queued or running jobs and evaluations, the most allowed "
            f"(SKILL_ADAPTER_MAX_ACTIVE_JOBS_PER_KEY={cap}); wait for one to finish or cancel one, then retry",
            code="too_many_active_jobs",
            retry_after_seconds=ACTIVE_RETRY_AFTER_SECONDS,
            limit=cap,
        )
    now = utcnow()
    since = now - WINDOW
    recent, oldest = 0, None
    for table in (Job, Evaluation):
        count, first = session.execute(
            select(func.count(), func.min(table.created_at)).where(
                _owned(table.owner, owner),  # type: ignore[arg-type]
                table.created_at >= since,
            )
        ).one()
        recent += count or 0
        if first is not None and (oldest is None or first < oldest):
            oldest = first
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
    queued = 0
    for table in (Job, Evaluation):
        queued += session.scalar(select(func.count()).select_from(table).where(table.status == "queued")) or 0
    depth = settings.max_queue_depth
    if queued >= depth:
        raise QueueFullError(
            f"The server's queue is full ({queued} jobs and evaluations waiting, SKILL_ADAPTER_MAX_QUEUE_DEPTH="
            f"{depth}); nothing was created, retry in {QUEUE_FULL_RETRY_AFTER_SECONDS} s",
            retry_after_seconds=QUEUE_FULL_RETRY_AFTER_SECONDS,
            limit=depth,
        )
