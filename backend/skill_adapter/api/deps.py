"""Dependencies: the settings, a database session, the enqueue function and the caller, from ``app.state``."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from skill_adapter.auth import (
    ANONYMOUS,
    Caller,
    KeyEntry,
    UnauthorizedError,
    active_keys,
    bearer_token,
    keys_required,
    match_key,
)
from skill_adapter.core.config import Settings
from skill_adapter.worker.supervisor import Enqueue

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


class KeyRing:
    """The API's copy of the live keys, reloaded from the database at most every ``ttl`` seconds.

    A presented key that matches nothing reloads at once (at most once a second), so a key made with
    ``skill-adapter keys create`` works on its first call; a revoked key stops working within ``ttl``.
    """

    MISS_RELOAD_SECONDS = 1.0

    def __init__(self, session_factory: sessionmaker[Session], ttl: float) -> None:
        self._session_factory = session_factory
        self._ttl = ttl
        self._entries: list[KeyEntry] | None = None
        self.required = False
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def cached(self) -> list[KeyEntry] | None:
        """The entries when they are fresh enough, else None (then call :meth:`load` off the event loop)."""
        if self._entries is not None and time.monotonic() - self._loaded_at < self._ttl:
            return self._entries
        return None

    def load(self) -> list[KeyEntry]:
        with self._lock, self._session_factory() as session:
            self._entries = active_keys(session)
            self.required = bool(self._entries) or keys_required(session)
            self._loaded_at = time.monotonic()
            return self._entries

    def may_reload_on_miss(self) -> bool:
        return time.monotonic() - self._loaded_at >= self.MISS_RELOAD_SECONDS


async def authenticate(request: Request) -> Caller:
    """Who is calling. With no key in the database everyone is the anonymous admin (the service as before
    keys); with one, ``Authorization: Bearer KEY`` is required and names the caller, else 401 ``unauthorized``.

    Applied to whole routers in ``api/main.py`` (``dependencies=PROTECTED``); a route that scopes by owner
    takes it again as ``caller: CallerDep`` (FastAPI runs it once per request).
    """
    ring: KeyRing = request.app.state.keyring
    entries = ring.cached()
    if entries is None:
        entries = await run_in_threadpool(ring.load)
    if not entries and not ring.required:
        return ANONYMOUS
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise UnauthorizedError(
            "This server needs an API key: send the header 'Authorization: Bearer KEY' "
            "(the operator makes one with `skill-adapter keys create NAME`)"
        )
    entry = match_key(token, entries)
    if entry is None and ring.may_reload_on_miss():  # perhaps a key created since the last load
        entry = match_key(token, await run_in_threadpool(ring.load))
    if entry is None:
        raise UnauthorizedError("This API key is not valid here (revoked, mistyped, or from another server)")
    return Caller(name=entry.name, admin=entry.admin)


CallerDep = Annotated[Caller, Depends(authenticate)]
# What every router except health gets, in one line: ``app.include_router(x.router, dependencies=PROTECTED)``.
PROTECTED = [Depends(authenticate)]
