"""What a running job tells the database: progress, metric points, log lines, checkpoints, cancel flag."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from skill_adapter import crud
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope


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

    def log(self, message: str, level: str = "INFO") -> None:
        """A log line in the database and, when there is one, in the job's log file."""
        with session_scope(self.settings) as session:
            crud.add_log(session=session, job_id=self.job_id, message=message, level=level)
        if self.log_file is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            with self.log_file.open("a", encoding="utf-8") as fh:
                fh.write(f"{stamp} {level} {message}\n")

    def progress(self, **values: Any) -> None:
        with session_scope(self.settings) as session:
            crud.update_job(session=session, job_id=self.job_id, **values)

    def heartbeat(self, min_interval: float = 2.0) -> None:
        """Mark the job alive, at most once per ``min_interval`` seconds."""
        now = time.monotonic()
        if now - self._heartbeat_at >= min_interval:
            self._heartbeat_at = now
            self.progress()

    def metric(self, *, job_values: dict[str, Any], **point: Any) -> None:
        """One metric point plus the job's latest values, in one transaction."""
        with session_scope(self.settings) as session:
            crud.add_metric(session=session, job_id=self.job_id, **point)
            crud.update_job(session=session, job_id=self.job_id, **job_values)

    def checkpoint(self, *, step: int, path: Path) -> None:
        with session_scope(self.settings) as session:
            crud.add_checkpoint(session=session, job_id=self.job_id, step=step, path=str(path))

    def cancel_requested(self) -> bool:
        """Whether the job's cancel flag is set (read at most once per poll interval)."""
        now = time.monotonic()
        if not self._cancelled and now - self._cancel_checked_at >= self._cancel_poll_seconds:
            self._cancel_checked_at = now
            with session_scope(self.settings) as session:
                self._cancelled = crud.is_cancel_requested(session=session, job_id=self.job_id)
        return self._cancelled


class DatabaseLogHandler(logging.Handler):
    """Sends log records of the training process to the job's log lines."""

    def __init__(self, reporter: JobReporter, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.reporter.log(self.format(record), level=record.levelname)
        except Exception:  # a log line must never break training
            self.handleError(record)
