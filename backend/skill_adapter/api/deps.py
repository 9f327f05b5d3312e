"""Dependencies: the settings, a database session and the enqueue function, all from ``app.state``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from skill_adapter.core.config import Settings
from skill_adapter.service import Enqueue

# The dependencies are async because they do no I/O: FastAPI runs a sync dependency on a worker thread, a trip
# through the thread pool (a wait for a thread, then for the GIL) for a dictionary lookup.


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def close_touches_database(session: Session) -> bool:
    """Whether closing ``session`` may talk to the database (and so could block).

    It does not when the session never took a connection, or holds a SQLite connection outside a write
    transaction: pysqlite opens no transaction for reads, so the rollback on release is a no-op. Any other
    database gets a ROLLBACK, a round trip to the server.
    """
    if not session.in_transaction():
        return False
    try:
        connection = session.connection()
        if connection.dialect.name != "sqlite":
            return True
        return bool(connection.connection.dbapi_connection.in_transaction)  # type: ignore[union-attr]
    except Exception:  # an invalidated connection, say: let the thread deal with it
        return True


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session for one request, opened on the event loop: creating it does no I/O (it connects on its first
    query, in the endpoint's thread). A sync generator dependency would cost two extra hops through the thread
    pool per request (one to open, one to close), and each hop is a wait for a thread and for the GIL.

    Closing runs after the answer has been sent: on the loop when that does no I/O, else on a thread.
    """
    session = request.app.state.session_factory()
    try:
        yield session
    finally:
        if close_touches_database(session):
            await run_in_threadpool(session.close)
        else:
            session.close()


async def get_engine(request: Request) -> Engine:
    """The engine, for a route that reads through a plain connection (opened and closed on its own thread)."""
    return request.app.state.engine  # type: ignore[no-any-return]


async def get_enqueue(request: Request) -> Enqueue:
    return request.app.state.enqueue  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
EngineDep = Annotated[Engine, Depends(get_engine)]
EnqueueDep = Annotated[Enqueue, Depends(get_enqueue)]
