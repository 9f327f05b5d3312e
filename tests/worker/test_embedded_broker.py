"""The embedded filesystem broker keeps all its files in DATA_DIR, never in the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from skill_adapter.core.config import Settings
from skill_adapter.queued import TRAINING, WorkId
from skill_adapter.worker.queue import create_celery, sender


def test_messages_and_broadcasts_stay_in_the_data_dir(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    settings.prepare_dirs()
    sender(settings)(WorkId("train-000000000001", TRAINING.name))
    create_celery(settings).control.ping(timeout=0.2)  # a broadcast writes the exchange tables
    assert list(cwd.iterdir()) == []
    broker = settings.broker_folder
    assert list((broker / "queue").iterdir()), "the message is in DATA_DIR"
    assert list((broker / "control").glob("*.exchange")), "the broadcast tables are in DATA_DIR"
