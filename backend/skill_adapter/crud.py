"""Keyword-only functions over the tables: jobs, evaluations, logs, metrics, checkpoints, events.

The life cycle of queued work (claim, lease, finish, cancel, requeue, sweep) is written once, over every kind,
in ``queued.py``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from skill_adapter.core.errors import EvaluationNotFoundError, JobNotFoundError
from skill_adapter.models import Checkpoint, Evaluation, Job, JobEvent, LogLine, MetricPoint, utcnow

# Events that webhooks announce: every terminal state, and (when the job opts in) each saved checkpoint.
WEBHOOK_EVENT_TYPES = frozenset({"succeeded", "failed", "cancelled", "checkpoint_saved"})

if TYPE_CHECKING:
    from skill_adapter.auth import Caller

# Owner scoping: functions that take ``caller`` answer "not found" for another key's rows (never "forbidden":
# that would confirm the id exists); ``caller=None`` is the service itself (workers, the sweeper, the CLI).


def create_job(
    *,
    session: Session,
    job_id: str,
    skill_path: str,
    skill_name: str,
    config: dict[str, Any],
    idempotency_key: str | None = None,
    owner: str | None = None,
    flush: bool = True,
) -> Job:
    """Add a queued job and its ``created`` and ``queued`` events; ``flush=False`` leaves the INSERTs to the
    next flush, so a batch of jobs goes to the database in one statement per table (admission does this)."""
    job = Job(
        id=job_id,
        owner=owner,
        idempotency_key=idempotency_key,
        status="queued",
        skill_path=skill_path,
        skill_name=skill_name,
        config=config,
        total_epochs=int(config["num_epochs"]),
        created_at=utcnow(),
    )
    session.add(job)
    if flush:
        session.flush()
    add_event(
        session=session,
        job_id=job_id,
        type="created",
        message=f"Job created for skill {skill_name!r} on {config.get('base_model') or config.get('model')}",
        data={
            "skill_name": skill_name,
            "base_model": config.get("base_model"),
            "adapter_type": config.get("adapter_type"),
        },
    )
    add_event(session=session, job_id=job_id, type="queued", message="Job queued; waiting for a worker")
    return job


def get_job(*, session: Session, job_id: str, caller: Caller | None = None) -> Job:
    job = session.get(Job, job_id)
    if job is None or (caller is not None and not caller.sees(job.owner)):
        raise JobNotFoundError(f"Job {job_id!r} not found", job_id=job_id)
    return job


_JOB_ROW = select(Job.__table__).where(Job.__table__.c.id == bindparam("job_id"))


def job_row(*, connection: Connection, job_id: str, caller: Caller | None = None) -> Row[Any]:
    """The job's columns as a row, without the ORM: the read behind ``/status``, the most polled route.

    A plain connection skips the session's transaction and identity-map bookkeeping: measured at about a third
    of ``Session.get``'s CPU for the same answer.
    """
    row = connection.execute(_JOB_ROW, {"job_id": job_id}).one_or_none()
    if row is None or (caller is not None and not caller.sees(row.owner)):
        raise JobNotFoundError(f"Job {job_id!r} not found", job_id=job_id)
    return row


def job_by_idempotency_key(*, session: Session, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.idempotency_key == key))


def list_jobs(*, session: Session, limit: int, offset: int, caller: Caller | None = None) -> tuple[Sequence[Job], int]:
    """Jobs newest first (only the caller's own unless it is an admin), and how many there are."""
    mine = caller.owns(Job.owner) if caller is not None else None
    counted = select(func.count()).select_from(Job)
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit).offset(offset)
    if mine is not None:
        counted, query = counted.where(mine), query.where(mine)
    return session.scalars(query).all(), session.scalar(counted) or 0


def add_terminal_event(
    *,
    session: Session,
    job_id: str,
    status: str,
    error: dict[str, Any] | None = None,
    adapter_path: str | None = None,
) -> None:
    """The ``succeeded`` / ``failed`` (with its error) / ``cancelled`` event, in the caller's transaction."""
    data: dict[str, Any] = {"status": status}
    if status == "succeeded":
        data["adapter_path"] = adapter_path
        message = "Job succeeded" + (f"; adapter saved to {adapter_path}" if adapter_path else "")
        level = "info"
    elif status == "failed":
        code = (error or {}).get("code", "training_failed")
        detail = (error or {}).get("message", "")
        data["error"] = {"code": code, "message": detail}
        message, level = f"Job failed: [{code}] {detail}", "error"
    else:
        message, level = "Job cancelled", "warning"
    add_event(session=session, job_id=job_id, type=status, message=message, level=level, data=data)


def update_job(*, session: Session, job_id: str, **values: Any) -> None:
    """Write progress fields (and the heartbeat) of a running job."""
    values.setdefault("heartbeat_at", utcnow())
    session.execute(update(Job).where(Job.id == job_id).values(**values).execution_options(synchronize_session=False))


def add_log(*, session: Session, job_id: str, message: str, level: str = "INFO", step: int | None = None) -> None:
    """A log line; with ``step``, the step's one progress line, replacing an earlier attempt's line of that step
    (deleted and written anew, so a reader following the cursor sees the new one)."""
    if step is not None:
        session.execute(delete(LogLine).where(LogLine.job_id == job_id, LogLine.step == step))
    session.add(LogLine(job_id=job_id, level=level, message=message, ts=utcnow(), step=step))


def read_logs(*, session: Session, job_id: str, after: int, limit: int) -> Sequence[LogLine]:
    return session.scalars(
        select(LogLine).where(LogLine.job_id == job_id, LogLine.id > after).order_by(LogLine.id).limit(limit)
    ).all()


def add_metric(*, session: Session, job_id: str, step: int, merge: bool = False, **values: Any) -> None:
    """The job's one metric point of ``step``, written anew (so a reader following the cursor sees it).

    An earlier point of the same step is replaced: by a resumed run redoing the step, or by a retried write.
    ``merge`` keeps the earlier point's values where this one has none (a held-out loss logged at the same
    step as the training loss, by the same run).
    """
    earlier = session.scalar(select(MetricPoint).where(MetricPoint.job_id == job_id, MetricPoint.step == step))
    if earlier is not None:
        if merge:
            for column in MetricPoint.__table__.columns:
                if column.name not in ("id", "job_id", "ts", "step") and values.get(column.name) is None:
                    values[column.name] = getattr(earlier, column.name)
        session.delete(earlier)
        session.flush()
    session.add(MetricPoint(job_id=job_id, ts=utcnow(), step=step, **values))


def read_metrics(*, session: Session, job_id: str, after: int, limit: int) -> Sequence[MetricPoint]:
    return session.scalars(
        select(MetricPoint)
        .where(MetricPoint.job_id == job_id, MetricPoint.id > after)
        .order_by(MetricPoint.id)
        .limit(limit)
    ).all()


def add_checkpoint(
    *, session: Session, job_id: str, step: int, path: str, metrics: dict[str, Any] | None = None
) -> None:
    """A checkpoint row with its step's metrics, and its ``checkpoint_saved`` event (one transaction)."""
    session.add(Checkpoint(job_id=job_id, step=step, path=path, created_at=utcnow(), metrics=metrics))
    name = path.rstrip("/").rsplit("/", 1)[-1]
    shown = ", ".join(f"{k} {v:.4g}" for k, v in (metrics or {}).items() if isinstance(v, (int, float)))
    add_event(
        session=session,
        job_id=job_id,
        type="checkpoint_saved",
        message=f"Saved {name} at step {step}" + (f" ({shown})" if shown else ""),
        data={"step": step, "name": name, "path": path, "metrics": metrics or {}},
    )


def add_event(
    *,
    session: Session,
    job_id: str,
    type: str,
    message: str,
    level: str = "info",
    data: dict[str, Any] | None = None,
) -> None:
    """Record one event of a job's life in the caller's transaction (webhook-worthy ones are marked pending)."""
    session.add(
        JobEvent(
            job_id=job_id,
            time=utcnow(),
            level=level,
            type=type,
            message=message,
            data=data,
            webhook_state="pending" if type in WEBHOOK_EVENT_TYPES else None,
        )
    )


def read_events(*, session: Session, job_id: str, after: int, limit: int) -> Sequence[JobEvent]:
    return session.scalars(
        select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after).order_by(JobEvent.id).limit(limit)
    ).all()


def delete_checkpoint(*, session: Session, job_id: str, path: str) -> None:
    session.execute(delete(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.path == path))


def list_checkpoints(*, session: Session, job_id: str) -> Sequence[Checkpoint]:
    return session.scalars(select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step)).all()


# Evaluations: queued work of their own kind (``queued.EVALUATION``), one per run over a job's adapter.


def create_evaluation(
    *,
    session: Session,
    evaluation_id: str,
    job_id: str,
    params: dict[str, Any],
    owner: str | None = None,
    flush: bool = True,
) -> Evaluation:
    evaluation = Evaluation(
        id=evaluation_id, job_id=job_id, owner=owner, status="queued", params=params, created_at=utcnow()
    )
    session.add(evaluation)
    if flush:
        session.flush()
    return evaluation


def get_evaluation(
    *, session: Session, evaluation_id: str, job_id: str | None = None, caller: Caller | None = None
) -> Evaluation:
    evaluation = session.get(Evaluation, evaluation_id)
    if (
        evaluation is None
        or (job_id is not None and evaluation.job_id != job_id)
        or (caller is not None and not caller.sees(evaluation.owner))
    ):
        raise EvaluationNotFoundError(f"Evaluation {evaluation_id!r} not found", evaluation_id=evaluation_id)
    return evaluation


def list_evaluations(*, session: Session, job_id: str) -> Sequence[Evaluation]:
    """A job's evaluations, newest first."""
    return session.scalars(
        select(Evaluation)
        .where(Evaluation.job_id == job_id)
        .order_by(Evaluation.created_at.desc(), Evaluation.id.desc())
    ).all()
