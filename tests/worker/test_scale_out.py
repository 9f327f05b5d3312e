"""The many-machine setup on real Postgres and Redis: db upgrade, an API alone, a worker on one queue, health."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from skill_adapter.core.config import Settings
from tests.helpers.own_postgres import own_postgres
from tests.helpers.processes import WORKER_PATIENCE, running_cli, running_serve, wait_until

REDIS_DB = 14  # a Redis database of this test's own on the machine's server, emptied before and after


@pytest.fixture
def redis_db() -> Iterator[str]:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis on 127.0.0.1:6379: {exc}")
    try:
        yield f"redis://127.0.0.1:6379/{REDIS_DB}"
    finally:
        client.flushdb()


@pytest.mark.services
def test_api_alone_and_a_routed_worker_on_postgres_and_redis(settings: Settings, redis_db: str, tmp_path: Path) -> None:
    with own_postgres(settings) as pg:
        env = {
            **os.environ,
            "SKILL_ADAPTER_DATABASE_URL": pg.resolved_database_url,
            "SKILL_ADAPTER_BROKER_URL": redis_db,
            "SKILL_ADAPTER_MODEL": "tiny",
            "SKILL_ADAPTER_DATA_DIR": str(tmp_path / "data"),
            "SKILL_ADAPTER_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
            "SKILL_ADAPTER_SKILLS_ROOT": str(settings.skills_root),
            "CUDA_VISIBLE_DEVICES": "",
        }

        upgrade = [sys.executable, "-m", "skill_adapter.cli", "db", "upgrade"]
        done = subprocess.run(upgrade, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        worker_args = ["worker", "--queues", "training", "--name", "trainer@%h"]
        with (
            running_serve("--no-worker", env=env, cwd=tmp_path) as (base, _),
            running_cli(
                worker_args, env=env, cwd=tmp_path, log_path=tmp_path / "worker.log", stop_signal=signal.SIGTERM
            ) as worker,
        ):
            worker.wait_for_line("ready.", WORKER_PATIENCE, what="the worker")
            # The worker's first heartbeat row follows its start.
            body = wait_until(
                lambda: (b := httpx.get(f"{base}/api/health", timeout=5).json()).get("workers") and b,
                WORKER_PATIENCE,
                "the worker in /api/health",
            )
            assert body["database"]["dialect"] == "postgresql" and body["broker"]["transport"] == "redis"
            (live,) = body["workers"]
            assert live["pid"] == worker.pid and live["name"].startswith("trainer@")
            assert live["queues"] == ["training"] and live["device"] == "cpu"
            assert body["warnings"] == ["no live worker consumes the evaluation queue"]
