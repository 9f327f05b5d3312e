"""Batched admission (a group commit): one lock, one count per owner and one commit for every submission
waiting at that moment; caps exact inside a batch; one bad row does not fail its batch; a request that gave
up waiting is never admitted behind its back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from skill_adapter import admission, crud
from skill_adapter.admission import AdmissionBusyError, TooManyRequestsError
from skill_adapter.core.config import Settings
from skill_adapter.core.db import init_db, session_scope
from skill_adapter.models import AdmissionLock, Job


@pytest.fixture
def db(settings: Settings) -> Settings:
    init_db(settings)
    return settings


def inserter(job_id: str, owner: str | None = None, key: str | None = None) -> Callable[[Session], Job]:
    def insert(session: Session) -> Job:
        return crud.create_job(
            session=session,
            job_id=job_id,
            skill_path="x",
            skill_name="x",
            config={"num_epochs": 1},
            owner=owner,
            idempotency_key=key,
        )

    return insert


def find(session: Session, key: str) -> Job | None:
    return crud.job_by_idempotency_key(session=session, key=key)


def lock_takes(settings: Settings) -> int:
    with session_scope(settings) as session:
        return int(session.scalar(select(AdmissionLock.admitted)) or 0)


def jobs(settings: Settings) -> list[str]:
    with session_scope(settings) as session:
        return sorted(session.scalars(select(Job.id)))


@pytest.fixture
def held(db: Settings) -> Callable[[list[admission._Request]], list[admission._Request]]:
    """Run requests as one batch: they wait in an admitter's inbox before its thread starts."""

    def run(requests: list[admission._Request]) -> list[admission._Request]:
        admitter = admission._Admitter(f"test-only:{id(requests)}")  # not registered: ends after its idle time
        for request in requests:
            admitter.inbox.put(request)
        admitter.thread.start()
        for request in requests:
            assert request.done.wait(60)
        return requests

    return run


def request(settings: Settings, insert: Callable[[Session], Any], *, owner: str | None = None, key: str | None = None):  # type: ignore[no-untyped-def]
    return admission._Request(settings=settings, owner=owner, key=key, insert=insert, find=find if key else None)


def test_a_batch_takes_the_lock_once_and_keeps_the_cap_exact(db: Settings, held: Any) -> None:
    capped = db.model_copy(update={"max_active_jobs_per_key": 3})
    before = lock_takes(db)
    done = held([request(capped, inserter(f"train-{i:012x}"), owner="alice") for i in range(5)])
    assert lock_takes(db) == before + 1  # one transaction for all five
    assert [r.error is None for r in done] == [True, True, True, False, False]
    assert all(isinstance(r.error, TooManyRequestsError) for r in done[3:])
    assert jobs(db) == [f"train-{i:012x}" for i in range(3)]


def test_owners_are_counted_apart_and_the_queue_cap_across_owners(db: Settings, held: Any) -> None:
    capped = db.model_copy(update={"max_active_jobs_per_key": 2, "max_queue_depth": 3})
    done = held(
        [
            request(capped, inserter("train-00000000000a"), owner="alice"),
            request(capped, inserter("train-00000000000b"), owner="bob"),
            request(capped, inserter("train-00000000000c"), owner="alice"),
            request(capped, inserter("train-00000000000d"), owner="bob"),  # the queue's 4th: refused
        ]
    )
    assert [type(r.error).__name__ for r in done] == ["NoneType", "NoneType", "NoneType", "QueueFullError"]
    assert jobs(db) == ["train-00000000000a", "train-00000000000b", "train-00000000000c"]


def test_a_key_sent_twice_in_one_batch_makes_one_job(db: Settings, held: Any) -> None:
    done = held(
        [
            request(db, inserter("train-000000000001", key="k1"), key="k1"),
            request(db, inserter("train-000000000002", key="k1"), key="k1"),
        ]
    )
    assert done[0].replayed is False and done[1].replayed is True
    assert done[1].result.id == done[0].result.id == "train-000000000001"
    assert jobs(db) == ["train-000000000001"]
    again = held([request(db, inserter("train-000000000003", key="k1"), key="k1")])  # a later batch finds it
    assert again[0].replayed is True and again[0].result.id == "train-000000000001"
    assert jobs(db) == ["train-000000000001"]


def test_one_failing_row_does_not_fail_the_others_in_its_batch(db: Settings, held: Any) -> None:
    def broken(session: Session) -> Job:
        raise RuntimeError("this row cannot be written")

    done = held(
        [
            request(db, inserter("train-000000000001")),
            request(db, broken),
            request(db, inserter("train-000000000003")),
        ]
    )
    assert done[0].error is None and done[2].error is None
    assert isinstance(done[1].error, RuntimeError)
    assert jobs(db) == ["train-000000000001", "train-000000000003"]


def test_a_request_that_gave_up_is_not_admitted_later(db: Settings, monkeypatch: pytest.MonkeyPatch, held: Any) -> None:
    monkeypatch.setattr(admission, "ADMISSION_PATIENCE_SECONDS", 0.2)
    gate, entered = threading.Event(), threading.Event()
    real_admit = admission._Admitter._admit

    def slow_admit(batch: list[admission._Request]) -> None:
        entered.set()
        gate.wait(30)  # the first batch is stuck (a slow database) while the second request waits
        real_admit(batch)

    monkeypatch.setattr(admission._Admitter, "_admit", staticmethod(slow_admit))
    first: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: first.update(
            row=admission.admit_and_insert(settings=db, owner=None, insert=inserter("train-000000000001"))
        )
    )
    runner.start()
    assert entered.wait(30)  # the first request is taken
    with pytest.raises(AdmissionBusyError) as refused:
        admission.admit_and_insert(settings=db, owner=None, insert=inserter("train-000000000002"))
    assert refused.value.code == "admission_busy" and refused.value.status_code == 503
    gate.set()
    runner.join(60)
    assert first["row"][0].id == "train-000000000001"  # it was taken: it waited past its patience and got in
    with session_scope(db) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1  # the one that gave up: never


def test_concurrent_submissions_are_each_admitted_once(db: Settings) -> None:
    """Many threads at once through the process's admission thread: every row once, no error."""
    barrier = threading.Barrier(24)
    results: list[tuple[Any, bool]] = []

    def submit(i: int) -> None:
        barrier.wait()
        results.append(admission.admit_and_insert(settings=db, owner=None, insert=inserter(f"train-{i:012x}")))

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 24 and sorted(row.id for row, _ in results) == jobs(db) == [
        f"train-{i:012x}" for i in range(24)
    ]


def test_after_commit_runs_on_the_admission_thread_once_the_row_is_committed(db: Settings, held: Any) -> None:
    """The enqueue runs right after the commit, for each admitted row only (not a refusal, not a replay)."""
    capped = db.model_copy(update={"max_active_jobs_per_key": 2})
    seen: list[tuple[str, bool, str]] = []

    def enqueue(row: Job) -> None:
        with session_scope(db) as other:  # committed: another session sees it
            visible = other.get(Job, row.id) is not None
        seen.append((row.id, visible, threading.current_thread().name))

    requests = [
        request(capped, inserter("train-000000000001", key="k"), key="k"),
        request(capped, inserter("train-000000000002", key="k"), key="k"),  # a replay
        request(capped, inserter("train-000000000003")),
        request(capped, inserter("train-000000000004")),  # past the cap of 2
    ]
    for r in requests:
        r.after_commit = enqueue
    done = held(requests)
    assert done[1].replayed and isinstance(done[3].error, TooManyRequestsError)
    assert [(job_id, visible) for job_id, visible, _ in seen] == [
        ("train-000000000001", True),
        ("train-000000000003", True),
    ]
    assert {thread for _, _, thread in seen} == {"admission"}
