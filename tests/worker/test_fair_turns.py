"""What a broker message runs under fair scheduling (issue 15), and what the direct paths run.

A message claims the work next in turn across owners (``supervise(..., in_turn=True)``, the Celery task);
``execute_job(id)`` and the CLI claim exactly their id. The sweeper counts a waiting message whose own item
already ran as standing for another queued item, so turns do not make it send duplicates."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from skill_adapter import crud, queued
from skill_adapter.core.config import Settings
from skill_adapter.core.db import init_db, session_scope
from skill_adapter.models import JobEvent
from skill_adapter.queued import TRAINING, WorkId
from skill_adapter.worker.queue import Sender
from skill_adapter.worker.supervisor import supervise, sweep_queued

# Training whose child records success at once (spawned: it must be importable by name).
INSTANT = dataclasses.replace(TRAINING, child="tests.worker.test_fair_turns:succeed")


def succeed(work_id: str, *, settings: Settings, worker_id: str) -> str:
    with session_scope(settings) as session:
        queued.finish(session=session, kind=TRAINING, work_id=work_id, status="succeeded", worker_id=worker_id)
    return "succeeded"


@pytest.fixture
def db(settings: Settings) -> Settings:
    settings.prepare_dirs()
    init_db(settings)
    return settings


def add(settings: Settings, owner: str | None, *job_ids: str) -> None:
    for job_id in job_ids:
        with session_scope(settings) as session:
            crud.create_job(
                session=session, job_id=job_id, skill_path="x", skill_name="x", config={"num_epochs": 1}, owner=owner
            )


def started_order(settings: Settings) -> list[str]:
    with session_scope(settings) as session:
        return list(
            session.scalars(select(JobEvent.job_id).where(JobEvent.type == "started").order_by(JobEvent.id)).all()
        )


@pytest.mark.slow  # spawns a child process per job (seconds each)
def test_messages_in_arrival_order_run_the_work_in_turns(db: Settings) -> None:
    add(db, "alice", "a1", "a2", "a3")
    add(db, "bob", "b1")
    messages = ["a1", "a2", "a3", "b1"]  # what the broker delivers: the order of acceptance
    outcomes = [supervise(INSTANT, message, settings=db, in_turn=True) for message in messages]
    assert outcomes == ["succeeded"] * 4
    assert started_order(db) == ["a1", "b1", "a2", "a3"]  # bob's job 2nd, not behind alice's burst
    # A message more than there is work (e.g. redelivered) finds nothing queued: a no-op.
    assert supervise(INSTANT, "a1", settings=db, in_turn=True) == "skipped"


@pytest.mark.slow  # spawns a child process per job (seconds each)
def test_a_direct_run_takes_exactly_its_own_job(db: Settings) -> None:
    """``skill-adapter train`` / ``execute_job(id)``: bob's job is next in turn, yet alice's a2 is what runs."""
    add(db, "alice", "a1", "a2")
    add(db, "bob", "b1")
    assert supervise(INSTANT, "a1", settings=db, in_turn=True) == "succeeded"
    assert supervise(INSTANT, "a2", settings=db) == "succeeded"
    assert supervise(INSTANT, "a2", settings=db) == "skipped"  # a second direct run of it: nothing to do
    assert started_order(db) == ["a1", "a2"]
    with session_scope(db) as session:
        assert crud.get_job(session=session, job_id="b1").status == "queued"


def test_the_sweeper_counts_a_spare_message_as_another_items_turn(db: Settings) -> None:
    sender = Sender(db)
    add(db, "alice", "a1", "a2", "a3")
    for job_id in ("a1", "a2", "a3"):
        sender(WorkId(job_id, TRAINING.name))
    queue = db.broker_folder / "queue"
    # A worker took a1's message and ran a2 (its turn): a2's message waits, a1 is queued without one.
    take(queue, "a1")
    with session_scope(db) as session:
        assert queued.claim(session=session, kind=TRAINING, work_id="a2", worker_id="w")
    assert sorted(sender.waiting_work() or []) == [("training", "a2"), ("training", "a3")]
    # Two messages for two queued jobs: nothing is lost, nothing is sent.
    assert sweep_queued(settings=db, enqueue=sender, older_than=0) == []
    # Claiming by id (fair scheduling off) a1 would need a message of its own.
    assert sweep_queued(settings=db.model_copy(update={"fair_scheduling": False}), enqueue=sender, older_than=0) == [
        "a1"
    ]
    # Messages lost (a Redis restart): one left for two queued jobs; one more is sent, once.
    take(queue, "a2")
    take(queue, "a3")
    assert sweep_queued(settings=db, enqueue=sender, older_than=0) == ["a3"]
    assert sweep_queued(settings=db, enqueue=sender, older_than=0) == []
    assert sorted(sender.waiting_work() or []) == [("training", "a1"), ("training", "a3")]


def take(queue: Path, job_id: str) -> None:
    """Remove the waiting message for ``job_id`` from the embedded broker's folder, as a worker takes it."""
    for path in queue.glob("*.msg"):
        message = json.loads(path.read_bytes())
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        if json.loads(body)[0] == [job_id]:
            path.unlink()
            return
    raise AssertionError(f"no waiting message for {job_id}")
