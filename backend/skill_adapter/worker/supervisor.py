"""The one supervisor of queued work, whatever its kind (``queued.KINDS``): the life of a run on a worker.

``supervise`` claims the work (compare-and-set), runs it in a spawned child process (CUDA does not survive
fork; a process per run returns GPU memory and makes a cancel or a take-back certain), renews its lease,
kills the child when the lease is lost, the cancel grace runs out or supervision itself fails, and records
how the child ended (guarded by ``worker_id``). ``sweep_queued`` re-sends queued work whose message may be
lost; ``reap_expired`` takes back running work whose worker went silent. Every database call is retried
while the database is unreachable (``reporting.retry_db``).

Torch-free: the child imports what its kind needs.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from skill_adapter import queued
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.queued import KINDS, WorkId, WorkKind
from skill_adapter.reporting import db_call, retry_db

log = logging.getLogger(__name__)

Enqueue = Callable[[WorkId], None]

HEARTBEAT_SECONDS = 5.0
CANCEL_GRACE_SECONDS = 10.0  # how long a child asked to cancel may take to stop by itself
END_GRACE_SECONDS = 30.0  # how long a child that recorded its end may take to exit
CHILD_NICENESS = 10


def heartbeat_interval(settings: Settings) -> float:
    """How often a worker renews its lease: every 5 s, and at least four times per lease."""
    return max(0.2, min(HEARTBEAT_SECONDS, settings.job_lease_seconds / 4))


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def supervise(kind: WorkKind, work_id: str, *, settings: Settings, in_turn: bool = False) -> str:
    """Claim ``work_id`` and run it in a child process; its final status, ``lost`` or ``skipped``.

    ``in_turn`` (what a broker message does, ``worker/tasks.py``): claim whichever queued work of the kind
    is next in turn across owners (``queued.claim_next``), which may be another item than ``work_id``; that
    item's own message later takes the next turn. Without it (``skill-adapter train`` and ``evaluate``,
    ``execute_job(id)``, ``execute_evaluation(id)``) exactly ``work_id`` is claimed, or nothing.
    """
    worker_id = worker_identity()
    if in_turn:
        claimed = db_call(settings, queued.claim_next, kind=kind, worker_id=worker_id)
        if claimed is None:
            log.info("message for %s %s: no %s is queued any more; nothing to do", kind.noun, work_id, kind.noun)
            return "skipped"
        if claimed != work_id:
            log.info("message for %s %s: %s %s is next in turn; running it", kind.noun, work_id, kind.noun, claimed)
        work_id = claimed
    elif not db_call(settings, queued.claim, kind=kind, work_id=work_id, worker_id=worker_id):
        log.info("%s %s is not queued any more; nothing to do", kind.noun, work_id)
        return "skipped"
    _note(settings, kind, work_id, f"claimed by worker {worker_id}")
    child = multiprocessing.get_context("spawn").Process(
        target=_child_main,
        args=(kind.child, work_id, settings.model_dump(mode="json"), os.getpid(), worker_id),
        name=f"{kind.task.rsplit('.', 1)[-1]}-{work_id}",  # train-<id>, evaluate-<id>: as the task
    )
    child.start()
    try:
        outcome = _watch(kind, work_id, child, settings=settings, worker_id=worker_id)
    except BaseException:  # the database stayed away past the retries, or the task is being torn down:
        _kill(child)  # never leave a child behind that another worker's run would collide with
        raise
    if outcome is not None:
        return outcome
    status = retry_db(
        lambda: _record_end(settings, kind, work_id, child.exitcode, worker_id=worker_id),
        what=f"recording the {kind.noun}'s end",
    )
    if status == "queued":  # the child died and the work has attempts left: send it again
        from skill_adapter.worker.queue import sender

        enqueue_work(kind, work_id, settings=settings, enqueue=sender(settings))
    return status


def _watch(kind: WorkKind, work_id: str, child: Any, *, settings: Settings, worker_id: str) -> str | None:
    """Renew the lease until the child exits (None), or stop it: ``lost`` or ``cancelled``."""
    cancel_seen_at: float | None = None
    while True:
        child.join(timeout=heartbeat_interval(settings))
        if not child.is_alive():
            return None
        if not db_call(settings, queued.renew_lease, kind=kind, work_id=work_id, worker_id=worker_id):
            work = db_call(settings, _state, kind=kind, work_id=work_id)
            if work["status"] == "cancelled" and kind.cancel_at_once:  # cancelled by a user: stop it now
                _kill(child)
                return "cancelled"
            if work["worker_id"] == worker_id and work["status"] in ("succeeded", "failed", "cancelled"):
                child.join(timeout=END_GRACE_SECONDS)  # its child recorded the end and is exiting
                _kill(child)
                return None
            # Taken back by the reaper (and maybe claimed by another worker): stop this run for sure.
            log.warning("%s %s was taken back from this worker; stopping its process", kind.noun, work_id)
            _kill(child)
            return "lost"
        if db_call(settings, queued.is_cancel_requested, kind=kind, work_id=work_id):
            cancel_seen_at = cancel_seen_at or time.monotonic()
            if time.monotonic() - cancel_seen_at > CANCEL_GRACE_SECONDS:
                _note(
                    settings,
                    kind,
                    work_id,
                    f"the {kind.process} did not stop in time after cancel; killing it",
                    "WARNING",
                )
                _kill(child)
                return None


def _state(*, session: Any, kind: WorkKind, work_id: str) -> dict[str, Any]:
    work = kind.get(session, work_id)
    return {"status": work.status, "worker_id": work.worker_id}


def _kill(child: Any) -> None:
    if child.is_alive():
        child.kill()
    child.join()


def _note(settings: Settings, kind: WorkKind, work_id: str, message: str, level: str = "INFO") -> None:
    def write(*, session: Any) -> None:
        kind.note(session, kind.get(session, work_id), message, level)

    db_call(settings, write)


def describe_exit(exitcode: int | None) -> str:
    """How a child process ended, in words: a signal's name and what usually sends it."""
    if exitcode is None:
        return "did not report an exit code"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        cause = " (the out-of-memory killer, or a kill -9)" if -exitcode == signal.SIGKILL else ""
        return f"was killed by {name}{cause}"
    return f"exited with code {exitcode}"


def _record_end(settings: Settings, kind: WorkKind, work_id: str, exitcode: int | None, *, worker_id: str) -> str:
    """The work's status once its child has ended.

    A child that ended without recording an outcome (killed, out of memory) leaves its work running: it is
    cancelled when that was asked, run again while attempts remain (a kind that retries), or failed with
    the cause. Work that another worker holds now is left alone.
    """
    with session_scope(settings) as session:
        work = kind.get(session, work_id)
        if work.status == "running" and work.worker_id == worker_id:
            how = describe_exit(exitcode)
            if work.cancel_requested:
                queued.finish(session=session, kind=kind, work_id=work_id, status="cancelled", worker_id=worker_id)
            elif kind.retry_crashed and work.attempts < settings.max_attempts:
                message = kind.crash_retry_message(settings, work, how)
                error = {"code": kind.crash_code, "message": message}
                if queued.requeue(
                    session=session, kind=kind, work_id=work_id, worker_id=worker_id, reason="process_died", error=error
                ):
                    kind.note(session, work, message, "WARNING")
            else:
                kind.note(session, work, f"the {kind.process} process {how}", "ERROR")
                queued.finish(
                    session=session,
                    kind=kind,
                    work_id=work_id,
                    status="failed",
                    worker_id=worker_id,
                    error={
                        "code": kind.crash_code,
                        "message": f"The {kind.process} process {how}, on attempt {work.attempts} of "
                        f"{settings.max_attempts}. {kind.crash_advice}",
                    },
                )
        session.flush()
        session.refresh(work)
        return str(work.status)


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this process when its parent dies (even by kill -9)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: the parent's heartbeat loop still notices, the reaper still recovers
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def resolve(entry: str) -> Callable[..., Any]:
    """The function that ``"module:function"`` names."""
    module, _, name = entry.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function


def _child_main(entry: str, work_id: str, settings_data: dict[str, Any], parent_pid: int, worker_id: str) -> None:
    from skill_adapter.quiet import silence_known_noise

    _die_with_parent(parent_pid)
    silence_known_noise()
    # The work takes whatever CPU is free; the API and the worker's heartbeat on the same machine go first.
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICENESS)
    resolve(entry)(work_id, settings=Settings.model_validate(settings_data), worker_id=worker_id)


# Sending, sweeping, reaping: what the API's sweeper thread and the worker call.


def enqueue_work(kind: WorkKind, work_id: str, *, settings: Settings, enqueue: Enqueue, record: bool = True) -> bool:
    """Send committed work's id to its queue. A failure is logged; the sweeper tries again later.

    ``record=False`` skips writing ``enqueued_at``: for work sent right after its creation, ``created_at``
    already dates the send for the sweeper, and the submission saves a second commit.
    """
    try:
        enqueue(WorkId(work_id, kind.name))
    except Exception as exc:  # the broker is down: the row is safe, the sweeper re-sends it
        log.warning("could not enqueue %s (%s); the sweeper will retry", work_id, exc)
        return False
    if not record:
        return True
    try:
        with session_scope(settings) as session:
            queued.mark_enqueued(session=session, kind=kind, work_id=work_id)
    except Exception as exc:  # committed and sent: at worst the sweeper sends it once more
        log.warning("could not record the enqueue of %s (%s)", work_id, exc)
    return True


def sweep_queued(*, settings: Settings, enqueue: Enqueue, older_than: float | None = None) -> list[str]:
    """Re-enqueue queued work whose message may have been lost. Duplicates are harmless: claims are CAS.

    A sender that sees its broker's queues (``Sender.waiting_work``) names the messages still waiting: work
    whose own message waits is not lost. Under fair scheduling a message claims whichever work is next in
    turn, so any waiting message of the kind stands for one queued item: a message whose own item is no
    longer queued (another message's turn took it) covers one more, and only the work beyond the waiting
    messages is sent again.
    """
    age = timedelta(seconds=settings.requeue_after_seconds if older_than is None else older_than)
    with session_scope(settings) as session:
        stale = {
            kind.name: queued.stale_queued_ids(session=session, kind=kind, older_than=age) for kind in KINDS.values()
        }
        queued_now = {
            kind.name: set(queued.queued_ids(session=session, kind=kind)) if stale[kind.name] else set()
            for kind in KINDS.values()
        }
    waiting_work = getattr(enqueue, "waiting_work", None)
    waiting = waiting_work() if waiting_work is not None and any(stale.values()) else None
    lost: list[tuple[WorkKind, str]] = []
    for name, ids in stale.items():
        if waiting is not None:
            messages = [work_id for kind_name, work_id in waiting if kind_name == name]
            ids = [work_id for work_id in ids if work_id not in set(messages)]
            if settings.fair_scheduling:  # a message whose item left the queue takes some other item's turn
                spare = sum(work_id not in queued_now[name] for work_id in messages)
                ids = ids[: max(0, len(ids) - spare)]
        lost.extend((KINDS[name], work_id) for work_id in ids)
    sent = [work_id for kind, work_id in lost if enqueue_work(kind, work_id, settings=settings, enqueue=enqueue)]
    if sent:
        log.info("re-enqueued %d queued job(s): %s", len(sent), ", ".join(sent))
    return sent


def reap_expired(*, settings: Settings, enqueue: Enqueue) -> list[str]:
    """Take back running work whose worker went silent: cancel it when that was asked, requeue it (a job
    resumes from its last complete checkpoint) or, after ``MAX_ATTEMPTS`` attempts, fail it with ``worker_lost``."""
    requeued: list[tuple[WorkKind, str]] = []
    lease = timedelta(seconds=settings.job_lease_seconds)
    with session_scope(settings) as session:
        for kind in KINDS.values():
            for work in queued.expired_running(session=session, kind=kind, lease=lease):
                if work.cancel_requested:
                    queued.finish(session=session, kind=kind, work_id=work.id, status="cancelled")
                elif work.attempts >= settings.max_attempts:
                    queued.finish(
                        session=session,
                        kind=kind,
                        work_id=work.id,
                        status="failed",
                        error={
                            "code": "worker_lost",
                            "message": f"The worker running this {kind.noun} stopped responding {work.attempts} "
                            f"time(s); giving up. See the job's logs for the last thing it did.",
                        },
                    )
                elif queued.requeue(
                    session=session, kind=kind, work_id=work.id, worker_id=work.worker_id, reason="worker_lost"
                ):
                    kind.note(
                        session,
                        work,
                        f"worker {work.worker_id} stopped sending heartbeats; {kind.noun} requeued "
                        f"(attempt {work.attempts + 1} of {settings.max_attempts}"
                        + (" will resume from the last checkpoint)" if kind.retry_crashed else ")"),
                        "WARNING",
                    )
                    requeued.append((kind, work.id))
    for kind, work_id in requeued:
        enqueue_work(kind, work_id, settings=settings, enqueue=enqueue)
    return [work_id for _, work_id in requeued]
