"""Engine and sessions from settings (SQLite WAL by default, Postgres through DATABASE_URL), and the schema.

The schema is managed by Alembic (``backend/skill_adapter/migrations``). ``skill-adapter db upgrade``
applies the revisions; the embedded SQLite database is upgraded automatically at start-up, and any other
database must already be at the newest revision or the service refuses to start.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, make_url
from sqlalchemy.orm import Session, sessionmaker

from skill_adapter.core.config import Settings

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)
logging.getLogger("alembic").setLevel(logging.WARNING)  # upgrade_db logs its own line on a change

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
UPGRADE_COMMAND = "skill-adapter db upgrade"
PG_MIGRATION_LOCK = 0x5A_AD_0001  # advisory lock key held while migrating Postgres


# Connections kept open. The API runs sync endpoints on up to 40 threads: with SQLAlchemy's default of 5,
# every burst above 5 opened and closed connections per request (a new Postgres backend each time), and
# /status latency collapsed under load.
POOL: dict[str, Any] = {"pool_size": 20, "max_overflow": 30}


@lru_cache(maxsize=16)
def _engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **POOL)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    connect_args: dict[str, Any] = {}
    if make_url(url).get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = 5  # an unreachable server fails fast instead of hanging
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **POOL)


def get_engine(settings: Settings) -> Engine:
    """The engine for these settings (one per URL and process)."""
    return _engine_for(settings.resolved_database_url)


@lru_cache(maxsize=16)
def _session_factory_for(url: str) -> sessionmaker[Session]:
    return sessionmaker(_engine_for(url), expire_on_commit=False)


def session_factory(settings: Settings) -> sessionmaker[Session]:
    """The session factory for these settings (one per URL and process, like the engine).

    Built once: ``sessionmaker()`` creates a new ``Session`` subclass each time it is called, and doing that
    per request cost about 0.3 ms (the class, then SQLAlchemy's event dispatch set up for it) and left a
    class's worth of cyclic garbage behind for the collector.
    """
    return _session_factory_for(settings.resolved_database_url)


def safe_url(url: str) -> str:
    """The URL with its password masked, fit for logs and health reports."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: show only the scheme
        return url.split("://", 1)[0] + "://…"


class SchemaError(RuntimeError):
    """The database schema does not match this code; the message says which command fixes it."""


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # the revision in alembic_version; None on an empty (or pre-migration) database
    head: str
    has_tables: bool  # service tables exist (tells a pre-migration database from an empty one)
    known: bool  # the current revision exists in this code's migrations

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def alembic_config(settings: Settings, connection: Any = None, *, migrations_dir: Path = MIGRATIONS_DIR) -> Config:
    """An Alembic config for these settings; the migrations live inside the package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", settings.resolved_database_url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest revision this code knows."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory(str(MIGRATIONS_DIR)).get_heads()
    if len(heads) != 1:
        raise SchemaError(f"the migrations have {len(heads)} heads ({', '.join(heads)}); merge them")
    return heads[0]


def schema_state(settings: Settings) -> SchemaState:
    """Where the database's schema stands against this code's migrations."""
    from alembic.migration import MigrationContext

    with get_engine(settings).connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        has_tables = inspect(conn).has_table("jobs")
    head = head_revision()
    known = current is None or current == head or current in _known_revisions()
    return SchemaState(current=current, head=head, has_tables=has_tables, known=known)


@lru_cache(maxsize=1)
def _known_revisions() -> frozenset[str]:
    """Every revision this code's migrations hold (read once: the files do not change under a process)."""
    from alembic.script import ScriptDirectory

    return frozenset(rev.revision for rev in ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions())


def check_schema(settings: Settings) -> SchemaState:
    """Raise ``SchemaError`` unless the database is at the newest revision."""
    state = schema_state(settings)
    if state.up_to_date:
        return state
    where = safe_url(settings.resolved_database_url)
    if not state.known:
        raise SchemaError(
            f"the database {where} is at schema revision {state.current}, which this version of skill-adapter "
            f"does not know (newest: {state.head}); a newer version migrated it: run that version"
        )
    if state.current is None and state.has_tables:
        raise SchemaError(
            f"the database {where} has tables but no migration history (it was created before migrations); "
            f"move it away, or if its tables match this version run `skill-adapter db stamp head`"
        )
    behind = f"is at revision {state.current}" if state.current else "has no schema yet"
    raise SchemaError(
        f"the database {where} {behind}; this version of skill-adapter needs revision {state.head}: "
        f"run `{UPGRADE_COMMAND}`"
    )


def upgrade_db(settings: Settings, revision: str = "head") -> SchemaState:
    """Apply the migrations up to ``revision``; a database created before migrations is refused."""
    from alembic import command

    settings.prepare_dirs()
    with _migration_lock(settings):
        state = schema_state(settings)
        if revision == "head" and state.up_to_date:
            return state  # nothing to apply: alembic's own no-op costs a quarter of a second (its scripts, env.py)
        if state.current is None and state.has_tables:
            check_schema(settings)  # raises with the pre-migration message
        with get_engine(settings).begin() as conn:
            if conn.dialect.name == "postgresql":  # two hosts upgrading at once: the second waits, then no-ops
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})")
            command.upgrade(alembic_config(settings, conn), revision)
    after = schema_state(settings)
    if after.current != state.current:
        log.info("database schema upgraded from %s to %s", state.current or "nothing", after.current)
    return after


def stamp_db(settings: Settings, revision: str = "head") -> None:
    """Record ``revision`` as applied without running it (for a database whose tables already match)."""
    from alembic import command

    with get_engine(settings).begin() as conn:
        command.stamp(alembic_config(settings, conn), revision)


def new_revision(message: str, *, migrations_dir: Path = MIGRATIONS_DIR) -> Path:
    """Autogenerate a revision for what ``models.py`` has and the newest revision lacks (for developers).

    Diffs the models against a scratch SQLite database at the current head; returns the new file.
    """
    import tempfile

    from alembic import command

    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=Path(scratch),
            checkpoint_dir=Path(scratch) / "checkpoints",
            database_url=f"sqlite:///{scratch}/scratch.db",
        )
        engine = get_engine(settings)
        try:
            with engine.begin() as conn:
                config = alembic_config(settings, conn, migrations_dir=migrations_dir)
                command.upgrade(config, "head")
                script = command.revision(config, message=message, autogenerate=True)
        finally:
            engine.dispose()
    head_revision.cache_clear()
    scripts = script if isinstance(script, list) else [script]
    return Path(scripts[0].path)  # type: ignore[union-attr]


def is_sqlite(settings: Settings) -> bool:
    return make_url(settings.resolved_database_url).get_backend_name() == "sqlite"


def init_db(settings: Settings, *, upgrade: bool | None = None) -> None:
    """Create the folders the service needs and make sure the schema is current.

    ``upgrade=None`` upgrades SQLite (the embedded default) and only checks any other database, which an
    operator upgrades with ``skill-adapter db upgrade``. Raises ``SchemaError`` when the schema is behind.
    """
    settings.prepare_dirs()
    if upgrade is None:
        upgrade = is_sqlite(settings)
    if upgrade:
        upgrade_db(settings)
    else:
        check_schema(settings)


@contextmanager
def _migration_lock(settings: Settings) -> Iterator[None]:
    """On SQLite, one process migrates at a time (serve and its worker may start together)."""
    if not is_sqlite(settings):
        yield
        return
    lock_path = settings.data_dir / ".migrate.lock"
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def session_scope(settings: Settings) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with session_factory(settings)() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
