"""Engine and sessions from settings: SQLite (WAL) by default, Postgres through DATABASE_URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from skill_adapter.core.config import Settings


@lru_cache(maxsize=16)
def _engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def get_engine(settings: Settings) -> Engine:
    """The engine for these settings (one per URL and process)."""
    return _engine_for(settings.resolved_database_url)


def init_db(settings: Settings) -> None:
    """Create the folders and tables the service needs."""
    from skill_adapter.models import Base

    settings.prepare_dirs()
    Base.metadata.create_all(get_engine(settings))


@contextmanager
def session_scope(settings: Settings) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    factory = sessionmaker(get_engine(settings), expire_on_commit=False)
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
