"""Shared fixtures: hermetic settings on temporary folders, the CPU only, no hub."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from skill_adapter.core.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SKILLS = REPO_ROOT / "skills"


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SKILL_ADAPTER_* variable from the developer's shell, no GPU, no hub."""
    for name in list(os.environ):
        if name.startswith("SKILL_ADAPTER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def skills_root(tmp_path: Path) -> Path:
    root = tmp_path / "skills"
    shutil.copytree(EXAMPLE_SKILLS, root)
    return root


@pytest.fixture
def settings(tmp_path: Path, skills_root: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        checkpoint_dir=tmp_path / "checkpoints",
        skills_root=skills_root,
    )


@pytest.fixture
def enqueued() -> list[str]:
    return []


@pytest.fixture
def client(settings: Settings, enqueued: list[str]) -> Iterator[object]:
    from fastapi.testclient import TestClient

    from skill_adapter.api.main import create_app

    app = create_app(settings, enqueue=enqueued.append, run_sweeper=False)
    with TestClient(app) as test_client:
        yield test_client
