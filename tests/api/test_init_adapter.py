"""`init_adapter` continues training from a succeeded job's adapter on the same base model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skill_adapter import crud, queued
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.queued import TRAINING
from tests.helpers.api import GUIDE_BODY, assert_error, start


def finished_job(client: Any, settings: Settings, tmp_path: Path, *, base: str, status: str = "succeeded") -> str:
    job_id = start(client).json()["job_id"]
    adapter = tmp_path / job_id / "final"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
    with session_scope(settings) as session:
        assert queued.claim(session=session, kind=TRAINING, work_id=job_id, worker_id="w")
        queued.finish(session=session, kind=TRAINING, work_id=job_id, status=status, adapter_path=str(adapter))
    return job_id


def test_init_adapter_is_resolved_and_stored(client: Any, settings: Settings, tmp_path: Path) -> None:
    earlier = finished_job(client, settings, tmp_path, base=settings.model_name_or_path)
    resp = start(client, {**GUIDE_BODY, "init_adapter": earlier})
    assert resp.status_code == 202, resp.text
    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=resp.json()["job_id"])
    assert job.config["init_adapter"] == earlier
    assert job.config["init_adapter_path"] == str(tmp_path / earlier / "final")


def test_init_adapter_refusals(client: Any, settings: Settings, tmp_path: Path) -> None:
    other_base = finished_job(client, settings, tmp_path, base="Qwen/Qwen3-8B")
    error = assert_error(start(client, {**GUIDE_BODY, "init_adapter": other_base}), 422, "invalid_parameter")
    assert "Qwen/Qwen3-8B" in error["message"] and "base model" in error["message"]

    failed = finished_job(client, settings, tmp_path, base=settings.model_name_or_path, status="failed")
    error = assert_error(start(client, {**GUIDE_BODY, "init_adapter": failed}), 422, "invalid_parameter")
    assert "succeeded" in error["message"]

    error = assert_error(start(client, {**GUIDE_BODY, "init_adapter": "train-000000000000"}), 422, "invalid_parameter")
    assert "not a known job" in error["message"]
    assert_error(start(client, {**GUIDE_BODY, "init_adapter": "../../etc"}), 422, "invalid_parameter")
