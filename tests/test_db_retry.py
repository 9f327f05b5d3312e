"""Transient database errors: workers retry their writes with backoff; anything else is raised at once."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from skill_adapter.reporting import is_transient_db_error, retry_db


class ConnectionRefused(Exception):
    """Stands in for a driver's connection error (psycopg raises its own OperationalError)."""


def operational(orig: Exception) -> OperationalError:
    return OperationalError("SELECT 1", {}, orig)


def test_unreachable_server_and_busy_sqlite_are_transient() -> None:
    assert is_transient_db_error(operational(ConnectionRefused("connection refused")))
    assert is_transient_db_error(operational(sqlite3.OperationalError("database is locked")))
    assert is_transient_db_error(operational(sqlite3.OperationalError("unable to open database file")))


def test_sql_mistakes_and_constraint_violations_are_not_transient() -> None:
    assert not is_transient_db_error(operational(sqlite3.OperationalError("no such table: jobs")))
    assert not is_transient_db_error(operational(sqlite3.OperationalError('near "SELEC": syntax error')))
    assert not is_transient_db_error(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not is_transient_db_error(ValueError("not a database error"))


def test_retry_db_waits_out_an_outage() -> None:
    calls = []

    def write() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise operational(ConnectionRefused("server closed the connection unexpectedly"))
        return "written"

    assert retry_db(write, what="a test write", patience=30) == "written"
    assert len(calls) == 3


def test_retry_db_gives_up_after_its_patience() -> None:
    calls = []

    def write() -> None:
        calls.append(1)
        raise operational(ConnectionRefused("connection refused"))

    with pytest.raises(OperationalError):
        retry_db(write, what="a test write", patience=0.5)
    assert 2 <= len(calls) <= 3  # 0.2 s, then 0.4 s would pass the patience


def test_retry_db_does_not_retry_a_permanent_error() -> None:
    calls = []

    def write() -> None:
        calls.append(1)
        raise operational(sqlite3.OperationalError("no such table: jobs"))

    with pytest.raises(OperationalError):
        retry_db(write, what="a test write", patience=30)
    assert len(calls) == 1
