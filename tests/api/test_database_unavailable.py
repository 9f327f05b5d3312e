"""An unreachable database: every route answers 503 ``database_unavailable`` with ``Retry-After``."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from skill_adapter.api.main import create_app
from skill_adapter.core.config import Settings

pytest.importorskip("psycopg")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once the socket is closed


@pytest.fixture
def unreachable(tmp_path: Path, skills_root: Path) -> TestClient:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        model="tiny",
        data_dir=tmp_path / "data",
        checkpoint_dir=tmp_path / "checkpoints",
        skills_root=skills_root,
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/skill_adapter",
    )
    # No lifespan (it would refuse to start on a database it cannot reach): the database goes away later.
    return TestClient(create_app(settings, enqueue=lambda job_id: None, run_sweeper=False))


def assert_503(resp: object) -> None:
    assert resp.status_code == 503, resp.text  # type: ignore[attr-defined]
    body = resp.json()  # type: ignore[attr-defined]
    assert body["error"]["code"] == "database_unavailable"
    assert "retry" in body["error"]["message"].lower()
    assert int(resp.headers["Retry-After"]) > 0  # type: ignore[attr-defined]


def test_status_while_the_database_is_down(unreachable: TestClient) -> None:
    assert_503(unreachable.get("/api/training/train-0123456789ab/status"))
    assert_503(unreachable.get("/api/training"))


def test_start_while_the_database_is_down(unreachable: TestClient) -> None:
    assert_503(unreachable.post("/api/training/start", json={"skill_path": "commit-messages/SKILL.md"}))
