"""What a polled request costs the server: one session factory per process, one trip through the thread pool
per request, and a session closed on the event loop only when that does no I/O (regressions here made
/status's p99 under load; the timing itself is measured in bench/status_bench.py, not here)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import anyio.to_thread
import pytest
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

from skill_adapter.api.deps import close_touches_database
from skill_adapter.core.config import Settings
from skill_adapter.core.db import init_db, session_factory, session_scope
from skill_adapter.models import Job
from skill_adapter.schemas import JobStatus

BODY = {"skill_path": "commit-messages/SKILL.md", "num_epochs": 1}


@pytest.fixture
def thread_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """What was sent to anyio's worker threads (FastAPI and Starlette go through it), by name."""
    trips: list[str] = []
    real = anyio.to_thread.run_sync

    async def counting(func: Any, *args: Any, **kwargs: Any) -> Any:
        named = func
        while isinstance(named, functools.partial):  # FastAPI wraps a sync endpoint: name the endpoint
            named = named.keywords.get("function", named.func)
        trips.append(getattr(named, "__qualname__", repr(named)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    yield trips


def test_session_factory_is_built_once_per_database(settings: Settings) -> None:
    assert session_factory(settings) is session_factory(settings)
    assert session_factory(settings) is session_factory(settings.model_copy())
    other = settings.model_copy(update={"database_url": f"sqlite:///{settings.data_dir}/other.db"})
    assert session_factory(other) is not session_factory(settings)


def test_no_sessionmaker_is_built_per_request_or_per_scope(
    client: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = client.post("/api/training/start", json=BODY).json()["job_id"]
    built: list[object] = []
    real_init = sessionmaker.__init__

    def spy(self: Any, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(sessionmaker, "__init__", spy)
    for _ in range(3):
        assert client.get(f"/api/training/{job_id}/status").status_code == 200
        with session_scope(settings) as session:
            assert session.get(Job, job_id) is not None
    assert built == []


@pytest.mark.parametrize(
    ("route", "endpoint"),
    [("", "list_jobs"), ("/{id}/status", "get_status"), ("/{id}/logs", "get_logs"),
     ("/{id}/metrics", "get_metrics"), ("/{id}/checkpoints", "get_checkpoints")],
)  # fmt: skip
def test_a_polled_route_takes_one_trip_through_the_thread_pool(
    client: Any, thread_trips: list[str], route: str, endpoint: str
) -> None:
    job_id = client.post("/api/training/start", json=BODY).json()["job_id"]
    thread_trips.clear()
    resp = client.get("/api/training" + route.replace("{id}", job_id))
    assert resp.status_code == 200
    # The endpoint alone: not the session's opening or closing, nor a second trip to validate the answer.
    assert thread_trips == [endpoint]


def test_status_answers_the_model_as_before(client: Any) -> None:
    created = client.post("/api/training/start", json=BODY).json()
    resp = client.get(f"/api/training/{created['job_id']}/status")
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert JobStatus.model_validate(body).job_id == created["job_id"]
    assert set(body) == set(JobStatus.model_fields)
    assert body["status"] == "queued" and body["created_at"] == created["created_at"]


def test_status_reads_a_row_without_a_session_and_answers_what_the_orm_would(client: Any, settings: Settings) -> None:
    from skill_adapter import crud
    from skill_adapter.api.routes.training import job_status
    from skill_adapter.public_paths import shower

    job_id = client.post("/api/training/start", json=BODY).json()["job_id"]
    with session_scope(settings) as session:  # a failed job: every optional field filled in
        job = crud.get_job(session=session, job_id=job_id)
        job.status, job.error_code, job.error_message, job.loss, job.step = "failed", "oom", "out of memory", 1.5, 7
    with session_scope(settings) as session:
        expected = job_status(crud.get_job(session=session, job_id=job_id), shower(settings)).model_dump(mode="json")

    def no_session() -> None:
        raise AssertionError("/status opened an ORM session")

    client.app.state.session_factory = no_session
    resp = client.get(f"/api/training/{job_id}/status")
    assert resp.status_code == 200
    assert resp.json() == expected
    assert resp.json()["error"] == {"code": "oom", "message": "out of memory"}


def test_unknown_job_still_answers_404_and_releases_its_connection(client: Any, settings: Settings) -> None:
    for _ in range(30):  # more than the pool holds: a leaked connection would exhaust it
        resp = client.get("/api/training/train-0000000000/status")
        assert resp.status_code == 404
        assert resp.json()["error"]["code"] == "job_not_found"
    assert session_factory(settings).kw["bind"].pool.checkedout() == 0


def test_a_sqlite_read_closes_without_the_database(settings: Settings) -> None:
    init_db(settings)
    factory = session_factory(settings)
    with factory() as session:
        assert close_touches_database(session) is False  # no connection taken yet
        session.add(Job(id="train-abc123", skill_path="x", config={}))
        session.commit()
    with factory() as session:
        assert session.get(Job, "train-abc123") is not None
        assert session.in_transaction()
        assert close_touches_database(session) is False  # pysqlite opened no transaction for the read


def test_an_uncommitted_sqlite_write_closes_on_a_thread(settings: Settings) -> None:
    init_db(settings)
    factory = session_factory(settings)
    with factory() as session:
        session.add(Job(id="train-abc123", skill_path="x", config={}))
        session.commit()
    with factory() as session:
        session.execute(update(Job).where(Job.id == "train-abc123").values(skill_name="y"))
        assert close_touches_database(session) is True  # the rollback writes to the database
    with factory() as session:
        assert session.get(Job, "train-abc123").skill_name == ""  # type: ignore[union-attr]


def test_a_submission_takes_one_trip_through_the_thread_pool(client: Any, thread_trips: list[str]) -> None:
    assert client.post("/api/training/start", json=BODY).status_code == 202
    assert thread_trips == ["submit_training_job"]  # the settings and the enqueue function come without a thread


@pytest.mark.services
def test_a_postgres_session_closes_on_a_thread(settings: Settings) -> None:
    from tests.helpers.own_postgres import own_postgres

    with own_postgres(settings) as pg:
        init_db(pg, upgrade=True)
        with session_factory(pg)() as session:
            assert close_touches_database(session) is False
            assert session.get(Job, "train-none") is None
            assert close_touches_database(session) is True  # its ROLLBACK is a round trip to the server
