"""Fixtures for the fault-tolerance suite: a private Redis, a database of its own, processes cleaned up."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.cluster import Cluster, PostgresDatabase, RedisServer, postgres_available


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def database() -> Iterator[PostgresDatabase]:
    if not postgres_available():
        pytest.skip("no Postgres on 127.0.0.1:5432 (user postgres)")
    db = PostgresDatabase()
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture
def cluster(
    tmp_path: Path, skills_root: Path, redis_server: RedisServer, database: PostgresDatabase
) -> Iterator[Cluster]:
    c = Cluster(tmp_path, skills_root, redis_server, database)
    try:
        yield c
    finally:
        c.stop_all()
