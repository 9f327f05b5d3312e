"""What a running job tells the database: progress, metric points, log lines, checkpoints, cancel flag.

Every write is retried with backoff while the database is unreachable (``retry_db``): training waits for
the database rather than failing, and nothing it reported is lost."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from skill_adapter import crud, queued
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.queued import TRAINING

T = TypeVar("T")
log = logging.getLogger(__name__)

# How long a worker keeps retrying a database write (training waits meanwhile) before it gives up.
DB_RETRY_SECONDS = 300.0
# SQLite reports SQL mistakes as OperationalError too; these are never worth a retry.
SQLITE_PERMANENT = ("no such", "syntax error", "has no column", "already exists", "readonly", "read-only")


def is_transient_db_error(exc: BaseException) -> bool:
    """A database that is unreachable, restarting or busy, as opposed to a query that can never work."""
    if isinstance(exc, (DisconnectionError, PoolTimeoutError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        if isinstance(exc, (OperationalError, InterfaceError)):
            if type(exc.orig).__module__.startswith("sqlite3"):
                return not any(words in str(exc.orig).lower() for words in SQLITE_PERMANENT)
            return True
    return False


def retry_db(fn: Callable[[], T], *, what: str, patience: float = DB_RETRY_SECONDS) -> T:
    """Run ``fn`` (one short transaction), retrying with backoff while the database is unreachable.

    A write that fails for a transient reason is tried again (0.2 s, doubling to 5 s) for up to
    ``patience`` seconds; then, or on any other error, the error is raised.
    """
    started, delay, warned = time.monotonic(), 0.2, False
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_transient_db_error(exc) or time.monotonic() - started + delay > patience:
                raise
            if not warned:  # once per outage (a training process's job log gets it when the database is back)
                log.warning("database unavailable during %s (%s); retrying for up to %.0f s", what, exc, patience)
                warned = True
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def db_call(settings: Settings, fn: Callable[..., T], /, **kwargs: Any) -> T:
    """``fn(session=..., **kwargs)`` in its own transaction, retried while the database is unreachable."""

    def run() -> T:
        with session_scope(settings) as session:
            return fn(session=session, **kwargs)

    return retry_db(run, what=getattr(fn, "__name__", "database call"))


def _in_transaction(settings: Settings, body: Callable[[Session], None]) -> None:
    def run() -> None:
        with session_scope(settings) as session:
            body(session)

    retry_db(run, what="job report")


class JobReporter:
    """Writes a job's live state. Each call is one short transaction; the training loop never holds one."""

    def __init__(
        self,
        settings: Settings,
        job_id: str,
        *,
        log_file: Path | None = None,
        cancel_poll_seconds: float = 1.0,
    ) -> None:
        self.settings = settings
        self.job_id = job_id
        self.log_file = log_file
        self._cancel_poll_seconds = cancel_poll_seconds
        self._cancel_checked_at = 0.0
        self._heartbeat_at = 0.0
        self._cancelled = False

    def log(self, message: str, level: str = "INFO", *, step: int | None = None) -> None:
        """A log line in the database and, when there is one, in the job's log file.

        ``step`` marks a training step's progress line: there is one per step, a redone step replaces it."""
        db_call(self.settings, crud.add_log, job_id=self.job_id, message=message, level=level, step=step)
        if self.log_file is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            with self.log_file.open("a", encoding="utf-8") as fh:
                fh.write(f"{stamp} {level} {message}\n")

    def progress(self, **values: Any) -> None:
        db_call(self.settings, crud.update_job, job_id=self.job_id, **values)

    def heartbeat(self, min_interval: float = 2.0) -> None:
        """Mark the job alive, at most once per ``min_interval`` seconds."""
        now = time.monotonic()
        if now - self._heartbeat_at >= min_interval:
            self._heartbeat_at = now
            self.progress()

    def metric(self, *, job_values: dict[str, Any], merge: bool = False, **point: Any) -> None:
        """The step's metric point plus the job's latest values, in one transaction (see ``crud.add_metric``)."""

        def write(session: Session) -> None:
            crud.add_metric(session=session, job_id=self.job_id, merge=merge, **point)
            crud.update_job(session=session, job_id=self.job_id, **job_values)

        _in_transaction(self.settings, write)

    def checkpoint(self, *, step: int, path: Path, metrics: dict[str, Any] | None = None) -> None:
        """A checkpoint row with its step's metrics, and its ``checkpoint_saved`` event."""
        db_call(self.settings, crud.add_checkpoint, job_id=self.job_id, step=step, path=str(path), metrics=metrics)

    def event(self, type: str, message: str, *, level: str = "info", data: dict[str, Any] | None = None) -> None:
        """One typed event of the job's life (the events API)."""
        db_call(self.settings, crud.add_event, job_id=self.job_id, type=type, message=message, level=level, data=data)

    def forget_checkpoint(self, *, path: Path) -> None:
        """Drop the row of a checkpoint folder that retention removed."""
        db_call(self.settings, crud.delete_checkpoint, job_id=self.job_id, path=str(path))

    def cancel_requested(self) -> bool:
        """Whether the job's cancel flag is set (read at most once per poll interval)."""
        now = time.monotonic()
        if not self._cancelled and now - self._cancel_checked_at >= self._cancel_poll_seconds:
            self._cancel_checked_at = now
            self._cancelled = db_call(self.settings, queued.is_cancel_requested, kind=TRAINING, work_id=self.job_id)
        return self._cancelled


class DatabaseLogHandler(logging.Handler):
    """Sends log records of the training process to the job's log lines."""

    def __init__(self, reporter: JobReporter, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.reporter = reporter
        self._inside = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._inside, "active", False):  # a record logged while writing one (a retry warning)
            return
        self._inside.active = True
        try:
            self.reporter.log(self.format(record), level=record.levelname)
        except Exception:  # a log line must never break training
            self.handleError(record)
        finally:
            self._inside.active = False
