"""Fair turns across owners (issue 15): whose queued work a worker claims next, for every kind of work.

One worker takes the work in the order ``claim_next`` gives: an owner with nothing running goes before
one with work running, owners take turns, and each owner's work runs oldest first. Claims stay a
compare-and-set: racing claimers never take one item twice (SQLite and Postgres)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from skill_adapter import crud, queued
from skill_adapter.core.config import Settings
from skill_adapter.core.db import init_db, session_scope
from skill_adapter.queued import EVALUATION, KINDS, TRAINING, WorkKind
from tests.helpers.own_postgres import own_postgres

EVAL_PARAMS = {"source": "held_out", "max_new_tokens": 4, "limit": None, "max_context_tokens": None, "evals": None}


@pytest.fixture
def db(settings: Settings) -> Settings:
    init_db(settings)
    with session_scope(settings) as session:  # the job the evaluations belong to (no owner, never queued)
        crud.create_job(session=session, job_id="train-base", skill_path="x", skill_name="x", config={"num_epochs": 1})
        session.flush()
        crud.get_job(session=session, job_id="train-base").status = "succeeded"
    return settings


def add(settings: Settings, kind: WorkKind, owner: str | None, *names: str) -> list[str]:
    """Queue one item of ``kind`` per name for ``owner``, in this order (each committed on its own)."""
    for name in names:
        with session_scope(settings) as session:
            if kind is TRAINING:
                crud.create_job(
                    session=session, job_id=name, skill_path="x", skill_name="x", config={"num_epochs": 1}, owner=owner
                )
            else:
                crud.create_evaluation(
                    session=session, evaluation_id=name, job_id="train-base", params=EVAL_PARAMS, owner=owner
                )
    return list(names)


def claim_next(settings: Settings, kind: WorkKind, worker_id: str = "w") -> str | None:
    with session_scope(settings) as session:
        return queued.claim_next(session=session, kind=kind, worker_id=worker_id)


def finish(settings: Settings, kind: WorkKind, work_id: str) -> None:
    with session_scope(settings) as session:
        assert queued.finish(session=session, kind=kind, work_id=work_id, status="succeeded")


def one_worker_order(settings: Settings, kind: WorkKind) -> list[str]:
    """The order in which one worker runs everything queued: claim, finish, claim the next..."""
    order = []
    while (work_id := claim_next(settings, kind)) is not None:
        order.append(work_id)
        finish(settings, kind, work_id)
    return order


@pytest.mark.parametrize("kind", list(KINDS.values()), ids=list(KINDS))
def test_a_burst_does_not_keep_another_owners_work_waiting(db: Settings, kind: WorkKind) -> None:
    burst = add(db, kind, "alice", "a1", "a2", "a3", "a4", "a5")
    add(db, kind, "bob", "b1")
    # In arrival order (FIFO) bob's item would run 6th; in turns it runs 2nd, as soon as one worker is free.
    assert one_worker_order(db, kind) == ["a1", "b1", *burst[1:]]


def test_owners_take_turns_and_each_owners_work_runs_oldest_first(db: Settings) -> None:
    add(db, TRAINING, "alice", "a1", "a2", "a3")
    add(db, TRAINING, "bob", "b1", "b2", "b3")
    add(db, TRAINING, "carol", "c1")
    assert one_worker_order(db, TRAINING) == ["a1", "b1", "c1", "a2", "b2", "a3", "b3"]


def test_the_owner_with_fewer_running_goes_first_whatever_the_arrival(db: Settings) -> None:
    add(db, TRAINING, "alice", "a1", "a2", "a3")
    add(db, TRAINING, "bob", "b1", "b2")
    assert claim_next(db, TRAINING, "w1") == "a1"
    assert claim_next(db, TRAINING, "w2") == "b1"
    assert claim_next(db, TRAINING, "w3") == "a2"  # a tie (one running each): alice started longest ago
    assert claim_next(db, TRAINING, "w4") == "b2"  # alice has two running, bob one
    finish(db, TRAINING, "a1")
    finish(db, TRAINING, "a2")
    add(db, TRAINING, "bob", "b3")
    add(db, TRAINING, "carol", "c1")
    # alice: 0 running, bob: 2 (b1, b2), carol: 0 running and never started -> carol, then alice
    assert claim_next(db, TRAINING, "w1") == "c1"
    assert claim_next(db, TRAINING, "w2") == "a3"
    assert claim_next(db, TRAINING, "w3") == "b3"
    assert claim_next(db, TRAINING, "w4") is None


def test_work_without_an_owner_is_one_owners_and_runs_in_arrival_order(db: Settings) -> None:
    add(db, TRAINING, None, "n1", "n2", "n3", "n4")
    assert one_worker_order(db, TRAINING) == ["n1", "n2", "n3", "n4"]


def test_kinds_take_turns_on_their_own(db: Settings) -> None:
    """Running training does not count against an owner's evaluations: each kind has its own workers' turns."""
    add(db, TRAINING, "alice", "a1")
    assert claim_next(db, TRAINING) == "a1"
    add(db, EVALUATION, "bob", "eb1")
    add(db, EVALUATION, "alice", "ea1")
    assert claim_next(db, EVALUATION) == "eb1"  # both have no evaluation running; bob's came first
    assert claim_next(db, TRAINING) is None  # nothing queued of that kind: the message is a no-op


def test_a_specific_claim_still_takes_exactly_its_own_item(db: Settings) -> None:
    """``skill-adapter train`` and ``execute_job(id)``: never another item, whoever's turn it is."""
    add(db, TRAINING, "alice", "a1", "a2")
    add(db, TRAINING, "bob", "b1")
    with session_scope(db) as session:
        assert queued.claim(session=session, kind=TRAINING, work_id="a2", worker_id="cli")
        assert not queued.claim(session=session, kind=TRAINING, work_id="a2", worker_id="again")  # a CAS
    assert claim_next(db, TRAINING) == "b1"  # alice has a2 running now
    assert claim_next(db, TRAINING) == "a1"
    with session_scope(db) as session:
        assert crud.get_job(session=session, job_id="a2").worker_id == "cli"


def test_cancelled_work_is_never_claimed(db: Settings) -> None:
    add(db, TRAINING, "alice", "a1", "a2")
    with session_scope(db) as session:
        queued.request_cancel(session=session, kind=TRAINING, work=crud.get_job(session=session, job_id="a1"))
    assert one_worker_order(db, TRAINING) == ["a2"]


@pytest.fixture(params=["sqlite", "postgres"])
def any_db(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Settings]:
    if request.param == "sqlite":
        init_db(settings)
        yield settings
        return
    with own_postgres(settings) as pg:
        init_db(pg, upgrade=True)
        yield pg


def test_racing_claimers_never_take_one_item_twice(any_db: Settings) -> None:
    owners = ["alice", "bob", "carol"]
    for n in range(24):
        add(any_db, TRAINING, owners[n % 3], f"job-{n:02d}")
    claimed: list[tuple[str, str]] = []
    lock, start = threading.Lock(), threading.Barrier(4)

    def worker(name: str) -> None:
        start.wait()
        while (work_id := claim_next(any_db, TRAINING, name)) is not None:
            with lock:
                claimed.append((work_id, name))

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    ids = [work_id for work_id, _ in claimed]
    assert sorted(ids) == [f"job-{n:02d}" for n in range(24)]  # each once, none left behind
    with session_scope(any_db) as session:
        rows = session.execute(select(TRAINING.model.id, TRAINING.model.worker_id, TRAINING.model.attempts)).all()
    holder = dict(claimed)
    for work_id, worker_id, attempts in rows:
        if work_id.startswith("job-"):
            assert (worker_id, attempts) == (holder[work_id], 1)  # the one claim that won, recorded once
    assert len(Counter(ids)) == 24
