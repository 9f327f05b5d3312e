"""Alembic migrations: the migrated schema equals the models on SQLite and Postgres; a schema behind is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table, inspect

from skill_adapter.cli import main as cli_main
from skill_adapter.core.config import Settings
from skill_adapter.core.db import (
    SchemaError,
    check_schema,
    get_engine,
    head_revision,
    init_db,
    schema_state,
    stamp_db,
    upgrade_db,
)
from skill_adapter.models import Base
from tests.helpers.own_postgres import own_postgres

TABLES = {"jobs", "log_lines", "metric_points", "checkpoints", "evaluations", "workers"}


def schema_diff(settings: Settings, metadata: MetaData = Base.metadata) -> list[object]:
    with get_engine(settings).connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata))


def with_extra_column(metadata: MetaData) -> MetaData:
    """A copy of the models' metadata with one more column: the comparison must notice it."""
    copy = MetaData()
    for table in metadata.tables.values():
        table.to_metadata(copy)
    copy.tables["workers"].append_column(Column("extra", Integer, nullable=True))
    Table("not_migrated", copy, Column("id", Integer, primary_key=True))
    return copy


@pytest.fixture
def pg_settings(settings: Settings) -> Iterator[Settings]:
    """Settings on a Postgres database of this test's own, dropped afterwards."""
    with own_postgres(settings) as pg:
        yield pg


def test_upgrade_matches_models_sqlite(settings: Settings) -> None:
    state = upgrade_db(settings)
    assert state.up_to_date and state.current == head_revision()
    assert set(inspect(get_engine(settings)).get_table_names()) >= TABLES
    assert schema_diff(settings) == []
    assert len(schema_diff(settings, with_extra_column(Base.metadata))) == 2


@pytest.mark.services
def test_upgrade_matches_models_postgres(pg_settings: Settings) -> None:
    state = upgrade_db(pg_settings)
    assert state.up_to_date
    assert set(inspect(get_engine(pg_settings)).get_table_names()) >= TABLES
    assert schema_diff(pg_settings) == []
    assert len(schema_diff(pg_settings, with_extra_column(Base.metadata))) == 2


def test_downgrade_to_base_and_up_again(settings: Settings) -> None:
    from alembic import command

    from skill_adapter.core.db import alembic_config

    upgrade_db(settings)
    with get_engine(settings).begin() as conn:
        command.downgrade(alembic_config(settings, conn), "base")
    assert not TABLES & set(inspect(get_engine(settings)).get_table_names())
    assert upgrade_db(settings).up_to_date
    assert schema_diff(settings) == []


def test_init_db_upgrades_sqlite_and_is_idempotent(settings: Settings) -> None:
    init_db(settings)
    init_db(settings)
    assert schema_state(settings).up_to_date


def test_schema_behind_is_refused_with_the_command(settings: Settings) -> None:
    settings.prepare_dirs()
    with pytest.raises(SchemaError, match=r"has no schema yet.*run `skill-adapter db upgrade`"):
        init_db(settings, upgrade=False)
    upgrade_db(settings)
    with get_engine(settings).begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'ffff0000'")
    with pytest.raises(SchemaError, match="revision ffff0000, which this version of skill-adapter does not know"):
        check_schema(settings)


def test_pre_migration_database_is_refused_then_stamped(settings: Settings) -> None:
    settings.prepare_dirs()
    Base.metadata.create_all(get_engine(settings))  # how databases were made before migrations
    with pytest.raises(SchemaError, match=r"no migration history.*skill-adapter db stamp head"):
        init_db(settings)
    stamp_db(settings)
    init_db(settings)
    assert schema_state(settings).up_to_date


@pytest.mark.services
def test_postgres_behind_is_refused_by_init_db_app_and_cli(pg_settings: Settings, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from skill_adapter.api.main import create_app

    with pytest.raises(SchemaError, match="run `skill-adapter db upgrade`"):
        init_db(pg_settings)  # Postgres is never upgraded implicitly
    with (
        pytest.raises(SchemaError, match="run `skill-adapter db upgrade`"),
        TestClient(create_app(pg_settings, enqueue=lambda _job_id: None, run_sweeper=False)),
    ):
        pass

    env = {
        **os.environ,
        "SKILL_ADAPTER_DATABASE_URL": pg_settings.resolved_database_url,
        "SKILL_ADAPTER_MODEL": "tiny",
        "SKILL_ADAPTER_DATA_DIR": str(tmp_path / "data"),
        "SKILL_ADAPTER_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "SKILL_ADAPTER_BROKER_URL": "redis://127.0.0.1:1/0",
    }
    for command in (["worker"], ["serve", "--no-worker", "--port", "1"]):
        run = subprocess.run(
            [sys.executable, "-m", "skill_adapter.cli", *command],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert run.returncode == 2, run.stderr
        assert "has no schema yet" in run.stderr and "run `skill-adapter db upgrade`" in run.stderr

    upgrade = subprocess.run(
        [sys.executable, "-m", "skill_adapter.cli", "db", "upgrade"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert upgrade.returncode == 0, upgrade.stderr
    assert f"schema at revision {head_revision()}" in upgrade.stdout
    assert schema_state(pg_settings).up_to_date
    init_db(pg_settings)  # now accepted


def test_db_cli_current_and_upgrade(settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SKILL_ADAPTER_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SKILL_ADAPTER_CHECKPOINT_DIR", str(settings.checkpoint_dir))
    assert cli_main(["db", "current"]) == 1
    assert "run `skill-adapter db upgrade`" in capsys.readouterr().out
    assert cli_main(["db", "upgrade"]) == 0
    assert cli_main(["db", "current"]) == 0
    assert f"schema at revision {head_revision()} (up to date)" in capsys.readouterr().out


def test_new_revision_autogenerates_against_the_head(tmp_path: Path) -> None:
    import shutil

    from skill_adapter.core.db import MIGRATIONS_DIR, new_revision

    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    path = new_revision("nothing changed", migrations_dir=copy)
    text = path.read_text()
    assert path.parent == copy / "versions" and f"down_revision: str | None = '{head_revision()}'" in text
    upgrade = text.split("def upgrade() -> None:")[1].split("def downgrade")[0]
    assert "pass" in upgrade and "op." not in upgrade  # the models equal the migrated schema
    compile(text, str(path), "exec")
    assert not (MIGRATIONS_DIR / "versions" / path.name).exists()


@pytest.mark.services
def test_concurrent_upgrades_on_postgres_apply_once(pg_settings: Settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=3) as pool:
        states = list(pool.map(lambda _: upgrade_db(pg_settings), range(3)))
    assert all(state.up_to_date for state in states)
    assert schema_diff(pg_settings) == []
