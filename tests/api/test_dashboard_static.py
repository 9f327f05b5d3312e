"""The built dashboard served by the API itself: files, SPA fallback, and the API left untouched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from skill_adapter.api.main import create_app, dashboard_dir
from skill_adapter.core.config import Settings


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    folder = tmp_path / "dist"
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text("<!doctype html><title>dashboard</title>")
    (folder / "assets" / "app-1234.js").write_text("console.log('app')")
    (tmp_path / "secret.txt").write_text("outside")
    return folder


@pytest.fixture
def served(settings: Settings, dist: Path) -> Iterator[TestClient]:
    app = create_app(settings, enqueue=lambda job_id: None, run_sweeper=False, dashboard=dist)
    with TestClient(app) as client:
        yield client


def test_index_and_assets(served: TestClient) -> None:
    root = served.get("/")
    assert root.status_code == 200 and "dashboard" in root.text
    asset = served.get("/assets/app-1234.js")
    assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]


def test_spa_fallback_for_client_routes(served: TestClient) -> None:
    for path in ("/jobs", "/jobs/train-0123456789ab", "/no/such/page"):
        response = served.get(path)
        assert response.status_code == 200
        assert "dashboard" in response.text


def test_api_keeps_its_routes_and_json_errors(served: TestClient) -> None:
    assert served.get("/api/health").json()["status"] == "ok"
    missing = served.get("/api/no-such-route")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert served.get("/api/training/train-000000000000/status").json()["error"]["code"] == "job_not_found"
    assert served.get("/openapi.json").status_code == 200


def test_no_file_outside_dist(served: TestClient) -> None:
    response = served.get("/..%2Fsecret.txt")
    assert "outside" not in response.text


def test_without_dist_nothing_is_mounted(settings: Settings, tmp_path: Path) -> None:
    app = create_app(settings, enqueue=lambda job_id: None, run_sweeper=False, dashboard=tmp_path / "missing")
    with TestClient(app) as client:
        assert client.get("/").status_code == 404


def test_dashboard_dir_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert dashboard_dir().parts[-2:] == ("frontend", "dist")
    monkeypatch.setenv("SKILL_ADAPTER_DASHBOARD_DIR", str(tmp_path))
    assert dashboard_dir() == tmp_path
