"""A Postgres database of a test's own on the machine's server (127.0.0.1:5432, user postgres), dropped after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from skill_adapter.core.config import Settings
from skill_adapter.core.db import get_engine

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=3, **PG) as conn:  # type: ignore[arg-type]
        conn.execute(sql)  # type: ignore[arg-type]


@contextmanager
def own_postgres(settings: Settings) -> Iterator[Settings]:
    """``settings`` pointed at a new database; skips the test when no server answers (CI starts one)."""
    name = f"skill_adapter_t_{uuid.uuid4().hex[:10]}"
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        pytest.skip(f"no Postgres on 127.0.0.1:5432: {exc}")
    pg = settings.model_copy(update={"database_url": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"})
    try:
        yield pg
    finally:
        get_engine(pg).dispose()
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
