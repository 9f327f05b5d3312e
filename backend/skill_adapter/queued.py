"""Queued work: its kinds (training, evaluation, ...) and its life cycle in the database, written once.

Every kind of work shares the ``QueuedWork`` columns and one life cycle:
queued -> running (claimed by ``worker_id``, lease renewed by ``heartbeat_at``) -> succeeded | failed | cancelled,
and back to queued when its worker is lost. A kind is registered in ``KINDS`` and only there: its table, its
Celery task and queue, the function its child process runs, and what it tells the job's log and events.
``worker/supervisor.py`` runs any kind (claim, spawn, heartbeat, kill, record, sweep, reap) from this table.

Torch-free; imports only ``models`` and ``crud`` (the API, the worker and the supervisor import it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from skill_adapter import crud
from skill_adapter.core.config import Settings
from skill_adapter.models import Evaluation, Job, utcnow


class WorkId(str):
    """A work id as it travels to the queue, with the name of its kind (the sender routes by the kind).

    It compares and prints as the plain id; only the broker message's routing reads ``kind``.
    """

    kind: str

    def __new__(cls, value: str, kind: str) -> WorkId:
        work_id = super().__new__(cls, value)
        work_id.kind = kind
        return work_id


@dataclass(frozen=True)
class WorkKind:
    """One kind of queued work. Its hooks write what the kind tells the job's log and events."""

    name: str  # the registry key, carried with an id to the queue
    model: type[Any]  # its table: a ``QueuedWork`` model
    noun: str  # in messages: "job", "evaluation"
    task: str  # the Celery task that runs it
    queue: str  # the broker queue it waits in
    child: str  # "module:function" run in the spawned child: ``(work_id, *, settings, worker_id) -> str``
    process: str  # the word for its child process in messages ("training", "evaluation")
    fail_code: str  # the error code of a failure without one
    crash_code: str  # the error code when the child dies without recording its end
    crash_advice: str  # what to try after such a death
    cancel_at_once: bool  # a cancel of running work ends it at once (nothing to save) instead of asking the child
    retry_crashed: bool  # a child that died without recording its end is run again while attempts remain

    def job_id(self, work: Any) -> str:
        """The job whose log and events tell this work's story."""
        return str(work.id)

    def get(self, session: Session, work_id: str) -> Any:
        """The row, or a not-found error."""
        row = session.get(self.model, work_id)
        if row is None:
            raise LookupError(f"{self.noun} {work_id!r} not found")
        return row

    def note(self, session: Session, work: Any, message: str, level: str = "INFO") -> None:
        crud.add_log(session=session, job_id=self.job_id(work), message=message, level=level)

    def on_claimed(self, session: Session, work: Any, worker_id: str) -> None:
        """Written when ``worker_id`` claims the work (in the claim's transaction)."""

    def on_finished(self, session: Session, work: Any, status: str, error: dict[str, Any] | None) -> None:
        """Written when the work reaches a terminal status (in that transaction)."""

    def on_requeued(self, session: Session, work: Any, worker_id: str | None, reason: str) -> None:
        """Written when the work is taken back from ``worker_id`` and queued again."""

    def end_values(self, status: str) -> dict[str, Any]:
        """Columns of its own that a terminal status sets."""
        return {}

    def crash_retry_message(self, settings: Settings, work: Any, how: str) -> str:
        """The log line and error message when a dead child's work is queued again."""
        return f"The {self.process} process {how}; retrying (attempt {work.attempts + 1} of {settings.max_attempts})."


class TrainingKind(WorkKind):
    """Training jobs: events on the job itself (started, requeued, terminal ones that webhooks announce)."""

    def on_claimed(self, session: Session, work: Any, worker_id: str) -> None:
        crud.add_event(
            session=session,
            job_id=work.id,
            type="started",
            message=f"Started on worker {worker_id} (attempt {work.attempts})",
            data={"worker_id": worker_id, "attempt": work.attempts},
        )

    def on_finished(self, session: Session, work: Any, status: str, error: dict[str, Any] | None) -> None:
        crud.add_terminal_event(
            session=session, job_id=work.id, status=status, error=error, adapter_path=work.adapter_path
        )

    def on_requeued(self, session: Session, work: Any, worker_id: str | None, reason: str) -> None:
        why = (
            f"Worker {worker_id} stopped sending heartbeats"
            if reason == "worker_lost"
            else f"The training process on worker {worker_id} died"
        )
        crud.add_event(
            session=session,
            job_id=work.id,
            type="requeued",
            level="warning",
            message=f"{why}; job requeued to resume from its last checkpoint",
            data={"reason": reason, "worker_id": worker_id},
        )

    def end_values(self, status: str) -> dict[str, Any]:
        return {"eta_seconds": 0.0} if status == "succeeded" else {}

    def crash_retry_message(self, settings: Settings, work: Any, how: str) -> str:
        from skill_adapter.training.checkpoints import latest_complete_checkpoint

        resume = latest_complete_checkpoint((settings.checkpoint_dir / work.id).resolve())
        where = f"from {resume.name}" if resume is not None else "from the start (no complete checkpoint)"
        return (
            f"The training process {how} at step {work.step}; retrying {where} "
            f"(attempt {work.attempts + 1} of {settings.max_attempts})."
        )


class EvaluationKind(WorkKind):
    """Evaluations of a job's adapter: their log lines and their ``evaluation_finished`` event go to the job."""

    def job_id(self, work: Any) -> str:
        return str(work.job_id)

    def note(self, session: Session, work: Any, message: str, level: str = "INFO") -> None:
        super().note(session, work, f"evaluation {work.id}: {message}", level)

    def on_finished(self, session: Session, work: Any, status: str, error: dict[str, Any] | None) -> None:
        data: dict[str, Any] = {"evaluation_id": work.id, "status": status, "report_path": work.report_path}
        if error is not None:
            data["error"] = {"code": work.error_code, "message": work.error_message}
        crud.add_event(
            session=session,
            job_id=work.job_id,
            type="evaluation_finished",
            level="error" if status == "failed" else "info",
            message=f"Evaluation {work.id} {status}"
            + (f": [{work.error_code}] {work.error_message}" if error is not None else ""),
            data=data,
        )


TRAINING = TrainingKind(
    name="training",
    model=Job,
    noun="job",
    task="skill_adapter.train",
    queue="training",
    child="skill_adapter.pipeline:run_claimed_job",
    process="training",
    fail_code="training_failed",
    crash_code="worker_crashed",
    crash_advice="See the job's logs; if it ran out of memory, reduce batch_size or max_seq_length or use QLoRA.",
    cancel_at_once=False,  # the trainer stops at its next step and saves a last checkpoint
    retry_crashed=True,  # and resumes from its newest complete checkpoint
)
EVALUATION = EvaluationKind(
    name="evaluation",
    model=Evaluation,
    noun="evaluation",
    task="skill_adapter.evaluate",
    queue="evaluation",
    child="skill_adapter.evaluation.jobs:run_claimed_evaluation",
    process="evaluation",
    fail_code="evaluation_failed",
    crash_code="evaluation_crashed",
    crash_advice="If it ran out of memory, evaluate with a smaller limit or max_new_tokens.",
    cancel_at_once=True,  # a half-done evaluation holds nothing worth keeping
    retry_crashed=False,
)

# The one place a kind of queued work is registered.
KINDS: dict[str, WorkKind] = {kind.name: kind for kind in (TRAINING, EVALUATION)}
QUEUES: tuple[str, ...] = tuple(dict.fromkeys(kind.queue for kind in KINDS.values()))  # what a worker consumes


# The life cycle, over any kind. Keyword-only; each runs in the caller's transaction.


def mark_enqueued(*, session: Session, kind: WorkKind, work_id: str) -> None:
    model = kind.model
    session.execute(update(model).where(model.id == work_id).values(enqueued_at=utcnow()))


def claim(*, session: Session, kind: WorkKind, work_id: str, worker_id: str) -> bool:
    """Move queued work to running for ``worker_id`` (compare-and-set). False when it is no longer queued."""
    model, now = kind.model, utcnow()
    result = session.execute(
        update(model)
        .where(model.id == work_id, model.status == "queued")
        .values(
            status="running",
            started_at=func.coalesce(model.started_at, now),
            heartbeat_at=now,
            worker_id=worker_id,
            attempts=model.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    kind.on_claimed(session, kind.get(session, work_id), worker_id)
    return True


def claim_next(*, session: Session, kind: WorkKind, worker_id: str) -> str | None:
    """Claim the queued work of this kind whose turn it is (``next_in_turn``) for ``worker_id``; its id, or
    None when nothing of the kind is queued. What a broker message does: each queued item has one message,
    and any message claims one item, so every item runs once and the owners take turns.

    The claim is the compare-and-set of ``claim``: when another worker took the chosen item first, the turn
    is worked out again (each retry means another worker took an item, so it ends)."""
    while (work_id := next_in_turn(session=session, kind=kind)) is not None:
        if claim(session=session, kind=kind, work_id=work_id, worker_id=worker_id):
            return work_id
    return None


NEVER = datetime.min.replace(tzinfo=UTC)


def next_in_turn(*, session: Session, kind: WorkKind) -> str | None:
    """The queued work of this kind that goes next, fair across owners (the keys that submitted it).

    Among the owners with queued work: the one with the fewest running items of this kind; on a tie, the
    one whose latest start is oldest (never started goes first), so owners take turns (round robin); then
    that owner's oldest queued item. Work without an owner (no keys) is one owner's, so it runs in arrival
    order. A resumed item keeps its first ``started_at``: taking it again is not a new turn for its owner.
    """
    model = kind.model
    oldest: dict[str | None, datetime] = dict(
        session.execute(
            select(model.owner, func.min(model.created_at)).where(model.status == "queued").group_by(model.owner)
        ).all()
    )
    if not oldest:
        return None
    owners = list(oldest)
    running: dict[str | None, int] = dict(
        session.execute(select(model.owner, func.count()).where(model.status == "running").group_by(model.owner)).all()
    )
    latest_start: dict[str | None, datetime] = dict(
        session.execute(
            select(model.owner, func.max(model.started_at))
            .where(_owner_in(model, owners), model.started_at.is_not(None))
            .group_by(model.owner)
        ).all()
    )
    owner = min(
        owners,
        key=lambda who: (running.get(who, 0), latest_start.get(who) or NEVER, oldest[who], who or ""),
    )
    return session.scalar(
        select(model.id)
        .where(model.status == "queued", _owner_in(model, [owner]))
        .order_by(model.created_at, model.id)
        .limit(1)
    )


def _owner_in(model: Any, owners: list[str | None]) -> Any:
    named = [owner for owner in owners if owner is not None]
    conditions = [model.owner.in_(named)] if named else []
    if len(named) < len(owners):
        conditions.append(model.owner.is_(None))
    return or_(*conditions)


def renew_lease(*, session: Session, kind: WorkKind, work_id: str, worker_id: str, **values: Any) -> bool:
    """Renew the lease of running work held by ``worker_id`` (and write ``values``, e.g. progress).

    False when the work was taken back, cancelled or ended."""
    model = kind.model
    result = session.execute(
        update(model)
        .where(model.id == work_id, model.status == "running", model.worker_id == worker_id)
        .values(heartbeat_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish(
    *,
    session: Session,
    kind: WorkKind,
    work_id: str,
    status: str,
    error: dict[str, Any] | None = None,
    worker_id: str | None = None,
    **values: Any,
) -> bool:
    """Move running work to a terminal status, with its own result columns (``values``).

    False when it was not running any more or, with ``worker_id``, when another worker holds it now: the
    end of a run that was taken back never overwrites the run that took over."""
    model = kind.model
    values.update(status=status, finished_at=utcnow(), **kind.end_values(status))
    if status == "succeeded":
        values["progress"] = 1.0
    if error is None:  # a retried run that ends well drops the message about its earlier attempt
        values.update(error_code=None, error_message=None)
    else:
        values.update(error_code=error.get("code", kind.fail_code), error_message=error.get("message", ""))
        error = {"code": values["error_code"], "message": values["error_message"]}
    conditions = [model.id == work_id, model.status == "running"]
    if worker_id is not None:
        conditions.append(model.worker_id == worker_id)
    result = session.execute(
        update(model).where(*conditions).values(**values).execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    work = kind.get(session, work_id)
    session.refresh(work)
    kind.on_finished(session, work, status, error)
    return True


def request_cancel(*, session: Session, kind: WorkKind, work: Any) -> Any:
    """Cancel queued work at once; flag running work (a ``cancel_at_once`` kind also ends it now, and its
    supervisor stops the child at its next heartbeat). Idempotent; 409 for finished work. Returns ``work``."""
    from skill_adapter.core.errors import JobStateError

    model, work_id = kind.model, str(work.id)
    if work.status == "cancelled":
        return work
    if work.status in ("succeeded", "failed"):
        raise JobStateError(
            f"{kind.noun.capitalize()} {work_id} already {work.status}; only queued or running "
            f"{kind.noun}s can be cancelled"
        )
    session.execute(
        update(model)
        .where(model.id == work_id, model.status.in_(("queued", "running")))
        .values(cancel_requested=True)
        .execution_options(synchronize_session=False)
    )
    ending = ("queued", "running") if kind.cancel_at_once else ("queued",)
    ended = session.execute(
        update(model)
        .where(model.id == work_id, model.status.in_(ending))
        .values(status="cancelled", finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.refresh(work)
    if ended.rowcount:  # type: ignore[attr-defined]
        kind.on_finished(session, work, "cancelled", None)
    return work


def is_cancel_requested(*, session: Session, kind: WorkKind, work_id: str) -> bool:
    model = kind.model
    return bool(session.scalar(select(model.cancel_requested).where(model.id == work_id)))


def requeue(
    *,
    session: Session,
    kind: WorkKind,
    work_id: str,
    worker_id: str | None,
    reason: str,
    error: dict[str, str] | None = None,
) -> bool:
    """Take running work back from ``worker_id`` (compare-and-set on the worker id) and queue it again;
    ``error`` tells what ended the attempt (kept until a later attempt ends)."""
    model = kind.model
    values: dict[str, Any] = {"status": "queued", "worker_id": None, "enqueued_at": None}
    if error is not None:
        values.update(error_code=error["code"], error_message=error["message"])
    result = session.execute(
        update(model)
        .where(model.id == work_id, model.status == "running", model.worker_id == worker_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    kind.on_requeued(session, kind.get(session, work_id), worker_id, reason)
    return True


def expired_running(*, session: Session, kind: WorkKind, lease: timedelta) -> Sequence[Any]:
    """Running work whose worker has not renewed its lease within ``lease``."""
    model, cutoff = kind.model, utcnow() - lease
    return session.scalars(
        select(model).where(model.status == "running", func.coalesce(model.heartbeat_at, model.started_at) < cutoff)
    ).all()


def stale_queued_ids(*, session: Session, kind: WorkKind, older_than: timedelta) -> list[str]:
    """Queued work whose last enqueue (or creation) is older than ``older_than``: its message may be lost."""
    model = kind.model
    cutoff: datetime = utcnow() - older_than
    return list(
        session.scalars(
            select(model.id)
            .where(model.status == "queued", func.coalesce(model.enqueued_at, model.created_at) < cutoff)
            .order_by(model.created_at)
        ).all()
    )


def queued_ids(*, session: Session, kind: WorkKind) -> list[str]:
    """Every queued item of this kind, oldest first."""
    model = kind.model
    return list(session.scalars(select(model.id).where(model.status == "queued").order_by(model.created_at)).all())
