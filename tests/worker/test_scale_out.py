"""The many-machine setup on real Postgres and Redis: db upgrade, an API alone, a worker on one queue, health."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from skill_adapter.core.config import Settings
from tests.helpers.own_postgres import own_postgres

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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

        def cli(*args: str, **kw: Any) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-m", "skill_adapter.cli", *args], env=env, cwd=tmp_path,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw,
            )  # fmt: skip

        assert cli("db", "upgrade").wait(timeout=60) == 0
        port = free_port()
        api = cli("serve", "--no-worker", "--port", str(port))
        worker = cli("worker", "--queues", "training", "--name", "trainer@%h")
        try:
            body: dict[str, Any] = {}
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not body.get("workers"):
                assert api.poll() is None and worker.poll() is None
                time.sleep(0.5)
                try:
                    response = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
                except httpx.TransportError:
                    continue
                body = response.json()
            assert response.status_code == 200, body
            assert body["database"]["dialect"] == "postgresql" and body["broker"]["transport"] == "redis"
            (live,) = body["workers"]
            assert live["pid"] == worker.pid and live["name"].startswith("trainer@")
            assert live["queues"] == ["training"] and live["device"] == "cpu"
            assert body["warnings"] == ["no live worker consumes the evaluation queue"]
        finally:
            stop(worker)
            stop(api)
