"""``target_modules`` entries the base model lacks are refused (issue 12): at submission when the model's weights
are on this machine (a local folder, or a hub model in the Hugging Face cache), otherwise by the worker once it
has loaded the model, before training, with the same code and message (PEFT alone would train the entries
that match and drop the rest without a word)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from skill_adapter import crud
from skill_adapter.api.main import create_app
from skill_adapter.assets import TINY_MODEL_DIR
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.core.model_modules import lora_module_names
from skill_adapter.models import Job
from skill_adapter.pipeline import execute_job
from tests.helpers.jobs import make_job


def _cache_hub_model(hub: Path, repo: str, files: list[str]) -> Path:
    """A hub model as huggingface_hub leaves it in its cache: refs/main naming a snapshot folder."""
    folder = hub / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / ("1" * 40)
    snapshot.mkdir(parents=True)
    for name in files:
        shutil.copy(TINY_MODEL_DIR / name, snapshot / name)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("1" * 40)
    return snapshot


def test_a_hub_model_in_the_local_cache_is_checked_at_submission(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    _cache_hub_model(tmp_path / "hub", "someone/tiny", ["config.json", "model.safetensors"])
    hub = settings.model_copy(update={"model": "someone/tiny"})
    assert hub.model_name_or_path == "someone/tiny"
    with TestClient(create_app(hub, enqueue=lambda job_id: None, run_sweeper=False)) as client:
        body: dict[str, Any] = {"skill_path": "commit-messages", "target_modules": ["q_proj", "nope"]}
        resp = client.post("/api/training/start", json=body)
        assert resp.status_code == 422, resp.text
        error = resp.json()["error"]
        assert error["code"] == "invalid_parameter" and error["field"] == "target_modules"
        assert "nope" in error["message"] and "q_proj" in error["message"]
        assert client.get("/api/training").json()["count"] == 0
        ok = client.post("/api/training/start", json={**body, "target_modules": ["q_proj", "v_proj"]})
        assert ok.status_code == 202, ok.text


def test_a_sharded_model_half_downloaded_is_named_by_its_index(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps(
            {
                "weight_map": {
                    "model.layers.0.self_attn.q_proj.weight": "model-00001-of-00002.safetensors",
                    "model.layers.99.mlp.up_proj.weight": "model-00002-of-00002.safetensors",
                    "model.norm.weight": "model-00002-of-00002.safetensors",
                }
            }
        )
    )
    shutil.copy(TINY_MODEL_DIR / "model.safetensors", tmp_path / "model-00001-of-00002.safetensors")
    # The second shard is missing: the first alone would lack layer 99, so the index names the modules.
    names = lora_module_names(tmp_path)
    assert names is not None and "model.layers.99.mlp.up_proj" in names


@pytest.mark.slow
def test_the_worker_refuses_target_modules_the_loaded_model_lacks(settings: Settings, skills_root: Path) -> None:
    # What a submission against a model the API could not read leaves: a job naming a module the model lacks.
    job_id = make_job(settings, skills_root, num_epochs=1, batch_size=8, target_modules=["q_proj"])
    with session_scope(settings) as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.config = {**job.config, "target_modules": ["q_proj", "nope"]}
    assert execute_job(job_id, settings=settings) == "failed"
    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
        steps = crud.read_metrics(session=session, job_id=job_id, after=0, limit=10)
    assert job.error_code == "invalid_parameter" and job.attempts == 1
    assert "['nope']" in (job.error_message or "") and "q_proj" in (job.error_message or "")
    assert not steps and job.adapter_path is None  # refused before the first step
