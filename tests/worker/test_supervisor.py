"""The one supervisor of queued work (issue 11): every kind gets the claim, the lease with database retry,
the kill of its child when the lease is lost or supervision fails, the end guarded by ``worker_id``, and
the reaper's cancel handling. Written against evaluations, the kind whose own copy had fallen behind."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from skill_adapter import crud, queued
from skill_adapter.core.config import Settings
from skill_adapter.core.db import init_db, session_scope
from skill_adapter.models import Evaluation, utcnow
from skill_adapter.queued import EVALUATION, KINDS, TRAINING, WorkId, WorkKind
from skill_adapter.worker.supervisor import enqueue_work, reap_expired, supervise

# An evaluation whose child is one of the functions below (spawned: they must be importable by name).
WAITING = dataclasses.replace(EVALUATION, child="tests.worker.test_supervisor:wait_for_go")


def wait_for_go(work_id: str, *, settings: Settings, worker_id: str) -> str:
    """A child that writes its pid, waits for a ``go`` file, then records success as ``worker_id``."""
    folder = settings.data_dir.resolve()
    (folder / "child.pid").write_text(str(os.getpid()))
    while not (folder / "go").exists():
        time.sleep(0.02)
    with session_scope(settings) as session:
        queued.finish(session=session, kind=EVALUATION, work_id=work_id, status="succeeded", worker_id=worker_id)
    return "succeeded"


@pytest.fixture
def quick(settings: Settings) -> Settings:
    """Heartbeats every 0.25 s."""
    settings = settings.model_copy(update={"job_lease_seconds": 1.0})
    init_db(settings)
    return settings


def new_evaluation(settings: Settings, evaluation_id: str = "eval-000000000001") -> str:
    with session_scope(settings) as session:
        crud.create_job(
            session=session,
            job_id="train-000000000001",
            skill_path=str(settings.skills_root / "commit-messages" / "SKILL.md"),
            skill_name="commit-messages",
            config={"num_epochs": 1},
        )
        params = {"source": "held_out", "max_new_tokens": 4, "limit": None, "max_context_tokens": None, "evals": None}
        crud.create_evaluation(session=session, evaluation_id=evaluation_id, job_id="train-000000000001", params=params)
    return evaluation_id


def evaluation_row(settings: Settings, evaluation_id: str) -> Evaluation:
    with session_scope(settings) as session:
        evaluation = crud.get_evaluation(session=session, evaluation_id=evaluation_id)
        session.expunge(evaluation)
        return evaluation


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def child_pid(settings: Settings) -> int:
    path = settings.data_dir.resolve() / "child.pid"
    wait_until(lambda: path.exists() and path.read_text() != "", "the child to start")
    return int(path.read_text())


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def in_thread(kind: WorkKind, work_id: str, settings: Settings) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["status"] = supervise(kind, work_id, settings=settings)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def transient() -> OperationalError:
    return OperationalError("UPDATE evaluations", {}, sqlite3.OperationalError("database is locked"))


def test_an_old_worker_cannot_overwrite_a_requeued_evaluation(quick: Settings) -> None:
    """A requeued evaluation's first worker ends late: its end must not replace the new worker's run."""
    from skill_adapter.evaluation.jobs import run_claimed_evaluation

    evaluation_id = new_evaluation(quick)
    with session_scope(quick) as session:
        assert queued.claim(session=session, kind=EVALUATION, work_id=evaluation_id, worker_id="old")
        assert queued.requeue(session=session, kind=EVALUATION, work_id=evaluation_id, worker_id="old", reason="x")
        assert queued.claim(session=session, kind=EVALUATION, work_id=evaluation_id, worker_id="new")
    # The old worker's child ends (here: it fails, the job has no held-out split) and records its end.
    assert run_claimed_evaluation(evaluation_id, settings=quick, worker_id="old") == "failed"
    evaluation = evaluation_row(quick, evaluation_id)
    assert (evaluation.status, evaluation.worker_id, evaluation.error_code) == ("running", "new", None)
    with session_scope(quick) as session:
        assert not queued.finish(
            session=session, kind=EVALUATION, work_id=evaluation_id, status="succeeded", worker_id="old", report={}
        )
        assert queued.finish(
            session=session, kind=EVALUATION, work_id=evaluation_id, status="succeeded", worker_id="new", report={}
        )
    assert evaluation_row(quick, evaluation_id).status == "succeeded"


def test_claim_and_heartbeat_wait_out_a_database_outage(quick: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    evaluation_id = new_evaluation(quick)
    failures = {"claim": 1, "renew_lease": 3}
    for name in failures:
        real = getattr(queued, name)

        def flaky(*, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
            if failures[_name] > 0:
                failures[_name] -= 1
                raise transient()
            return _real(**kwargs)

        monkeypatch.setattr(queued, name, flaky)
    thread, outcome = in_thread(WAITING, evaluation_id, quick)
    child_pid(quick)
    wait_until(lambda: failures["renew_lease"] == 0, "three failed heartbeats")
    (quick.data_dir.resolve() / "go").touch()
    thread.join(timeout=60)
    assert outcome == {"status": "succeeded"}
    assert evaluation_row(quick, evaluation_id).status == "succeeded"


def test_the_child_is_killed_when_supervision_fails(quick: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    evaluation_id = new_evaluation(quick)

    def broken(**kwargs: Any) -> bool:
        raise RuntimeError("supervision broke")

    thread, outcome = in_thread(WAITING, evaluation_id, quick)
    pid = child_pid(quick)
    monkeypatch.setattr(queued, "renew_lease", broken)
    thread.join(timeout=60)
    assert isinstance(outcome.get("error"), RuntimeError)
    assert not is_alive(pid), "the child outlived its supervisor"


def test_the_child_is_killed_when_the_lease_is_lost(quick: Settings) -> None:
    evaluation_id = new_evaluation(quick)
    thread, outcome = in_thread(WAITING, evaluation_id, quick)
    pid = child_pid(quick)
    worker_id = evaluation_row(quick, evaluation_id).worker_id
    with session_scope(quick) as session:  # what the reaper does to a worker it thinks dead
        assert queued.requeue(
            session=session, kind=EVALUATION, work_id=evaluation_id, worker_id=worker_id, reason="worker_lost"
        )
    thread.join(timeout=60)
    assert outcome == {"status": "lost"}
    assert not is_alive(pid)
    assert evaluation_row(quick, evaluation_id).status == "queued"


def test_the_reaper_cancels_a_stale_evaluation_whose_cancel_was_asked(quick: Settings) -> None:
    """As for a job: a cancel-requested run whose worker went silent ends cancelled, never runs again."""
    evaluation_id = new_evaluation(quick)
    with session_scope(quick) as session:
        assert queued.claim(session=session, kind=EVALUATION, work_id=evaluation_id, worker_id="w")
        session.execute(
            update(Evaluation)
            .where(Evaluation.id == evaluation_id)
            .values(cancel_requested=True, heartbeat_at=utcnow() - timedelta(seconds=60))
        )
    sent: list[str] = []
    assert reap_expired(settings=quick, enqueue=sent.append) == [] and sent == []
    evaluation = evaluation_row(quick, evaluation_id)
    assert evaluation.status == "cancelled" and evaluation.finished_at is not None


def test_the_kind_routes_the_message_not_the_id_prefix(quick: Settings) -> None:
    from skill_adapter.worker.queue import Sender

    sent: list[tuple[str, list[str], str]] = []
    sender = Sender(quick)
    sender.app.send_task = lambda name, args, queue: sent.append((name, args, queue))  # type: ignore[method-assign]
    for kind in (TRAINING, EVALUATION):
        assert enqueue_work(kind, "job-without-a-telling-prefix", settings=quick, enqueue=sender, record=False)
    assert sent == [
        ("skill_adapter.train", ["job-without-a-telling-prefix"], "training"),
        ("skill_adapter.evaluate", ["job-without-a-telling-prefix"], "evaluation"),
    ]
    with pytest.raises(TypeError):  # an id without its kind cannot be sent
        sender("eval-000000000001")  # type: ignore[arg-type]


def test_every_kind_has_a_task_and_a_queue_from_the_registry() -> None:
    from skill_adapter.worker.queue import create_celery
    from skill_adapter.worker.tasks import TASKS

    assert set(TASKS) == set(KINDS) == {"training", "evaluation"}
    routes = create_celery(Settings(_env_file=None)).conf.task_routes  # type: ignore[call-arg]
    assert routes == {kind.task: {"queue": kind.queue} for kind in KINDS.values()}
    assert WorkId("x", "evaluation") == "x" and WorkId("x", "evaluation").kind == "evaluation"


def test_cancelling_a_running_evaluation_stops_its_child_at_the_next_heartbeat(quick: Settings) -> None:
    evaluation_id = new_evaluation(quick)
    thread, outcome = in_thread(WAITING, evaluation_id, quick)
    pid = child_pid(quick)
    with session_scope(quick) as session:
        queued.request_cancel(
            session=session, kind=EVALUATION, work=crud.get_evaluation(session=session, evaluation_id=evaluation_id)
        )
    assert evaluation_row(quick, evaluation_id).status == "cancelled"  # at once, as the API answers
    thread.join(timeout=60)
    assert outcome == {"status": "cancelled"} and not is_alive(pid)


def test_a_child_that_dies_without_recording_its_end_fails_the_evaluation(quick: Settings) -> None:
    evaluation_id = new_evaluation(quick)
    thread, outcome = in_thread(WAITING, evaluation_id, quick)
    os.kill(child_pid(quick), 9)
    thread.join(timeout=60)
    assert outcome == {"status": "failed"}
    evaluation = evaluation_row(quick, evaluation_id)
    assert evaluation.error_code == "evaluation_crashed" and "SIGKILL" in (evaluation.error_message or "")
