"""Shared fixtures: hermetic settings on temporary folders, the CPU only, no hub."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from skill_adapter.core.config import Settings
from tests.helpers.databases import copy_database
from tests.helpers.paths import EXAMPLE_SKILLS, REAL_MODEL
from tests.helpers.tiers import never_selected

# Read before the hermetic fixture clears SKILL_ADAPTER_*: a folder that keeps converted built-in models
# between pytest runs (each conversion costs half a minute to two minutes and 540 MB).
TEST_MODELS_DIR = os.environ.get("SKILL_ADAPTER_TEST_MODELS_DIR", "")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Do not even import a test module whose every test ``-m`` deselects by the module's own ``pytestmark``:
    the fast tier then does not pay for the slow tiers' imports (peft, openai, ...) (tests/helpers/tiers.py)."""
    expression = config.option.markexpr
    if not expression or collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    return True if never_selected(collection_path, expression) else None


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SKILL_ADAPTER_* variable from the developer's shell, no GPU, no hub."""
    for name in list(os.environ):
        if name.startswith("SKILL_ADAPTER_"):
            monkeypatch.delenv(name)
    # The fast tiers train the embedded toy model, named explicitly; subprocesses inherit it. Tests of the
    # real default model (marker real_model) use the real_model_settings fixture below instead.
    monkeypatch.setenv("SKILL_ADAPTER_MODEL", "tiny")
    # The tiny model cannot teach (its answers are noise): tests of the distill recipe ask for it.
    monkeypatch.setenv("SKILL_ADAPTER_RECIPE", "template")
    # Starlette's TestClient sends "Host: testserver": the tests' server answers to it besides the loopback
    # names (the default stays loopback only). Admission caps sized for the tests that submit bursts;
    # tests/api/test_security.py sets its own.
    monkeypatch.setenv("SKILL_ADAPTER_ALLOWED_HOSTS", "localhost,127.0.0.1,::1,testserver")
    monkeypatch.setenv("SKILL_ADAPTER_MAX_ACTIVE_JOBS_PER_KEY", "100000")
    monkeypatch.setenv("SKILL_ADAPTER_SUBMISSIONS_PER_MINUTE", "100000")
    monkeypatch.setenv("SKILL_ADAPTER_MAX_QUEUE_DEPTH", "100000")
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
        model="tiny",
        data_dir=tmp_path / "data",
        checkpoint_dir=tmp_path / "checkpoints",
        skills_root=skills_root,
    )


@pytest.fixture
def enqueued() -> list[str]:
    return []


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite database at the newest revision, migrated once per session. Running the migrations costs a
    third of a second or more per database; the apps of the ``client`` fixture start from a copy instead (the
    migrations themselves are tested in tests/core/test_migrations.py, on empty databases)."""
    from skill_adapter.core.db import init_db

    root = tmp_path_factory.mktemp("migrated")
    template = Settings(
        _env_file=None,  # type: ignore[call-arg]
        model="tiny",
        database_url=None,
        data_dir=root / "data",
        checkpoint_dir=root / "checkpoints",
    )
    init_db(template)
    return template.data_dir / "skill-adapter.db"


@pytest.fixture
def client(settings: Settings, enqueued: list[str], migrated_database: Path) -> Iterator[object]:
    from fastapi.testclient import TestClient

    from skill_adapter.api.main import create_app

    if not settings.database_url:  # the app checks the copy's revision and finds it current
        copy_database(migrated_database, settings)
    app = create_app(settings, enqueue=enqueued.append, run_sweeper=False)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def real_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The models folder every real_model test of this session shares, so the GGUF converts once.

    ``SKILL_ADAPTER_TEST_MODELS_DIR`` keeps it across sessions; otherwise a session temporary folder."""
    if TEST_MODELS_DIR:
        folder = Path(TEST_MODELS_DIR).expanduser().resolve()
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def real_model_path(real_models_dir: Path) -> Path:
    """The converted real model's folder (converted here on first use, through the service's own code)."""
    from skill_adapter.core.base_models import converted_folder
    from skill_adapter.training.convert import ensure_model

    folder = converted_folder(REAL_MODEL, real_models_dir)
    ensure_model(str(folder), REAL_MODEL, progress=lambda message: print(f"[{REAL_MODEL}] {message}", flush=True))
    return folder


@pytest.fixture
def real_model_settings(
    tmp_path: Path, skills_root: Path, real_models_dir: Path, real_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Settings on the real default model, converted once per session into ``real_models_dir``.

    The environment says the same, so services and CLIs started as subprocesses train that model too."""
    monkeypatch.setenv("SKILL_ADAPTER_MODEL", REAL_MODEL)
    monkeypatch.setenv("SKILL_ADAPTER_MODELS_DIR", str(real_models_dir))
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        model=REAL_MODEL,
        models_dir=real_models_dir,
        data_dir=tmp_path / "data",
        checkpoint_dir=tmp_path / "checkpoints",
        skills_root=skills_root,
    )
    assert settings.model_name_or_path == str(real_model_path)
    return settings
