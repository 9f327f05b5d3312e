"""Model names on /v1: the base, job ids, skill names (newest first), and owners (issue 15's keys)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from skill_adapter import crud
from skill_adapter.core.config import Settings
from skill_adapter.core.db import init_db, session_scope
from skill_adapter.models import utcnow
from skill_adapter.serving.catalog import Catalog
from skill_adapter.serving.protocol import ServingError


def _job(settings: Settings, tmp_path: Path, job_id: str, skill: str, owner: str | None, age: int) -> None:
    folder = tmp_path / job_id / "final"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": settings.model_name_or_path}))
    with session_scope(settings) as session:
        job = crud.create_job(
            session=session, job_id=job_id, skill_path="x", skill_name=skill, config={"num_epochs": 1}
        )
        job.status, job.adapter_path, job.owner = "succeeded", str(folder), owner
        job.created_at = utcnow() - timedelta(minutes=age)


def test_names_resolve_newest_first_and_only_to_the_callers_adapters(settings: Settings, tmp_path: Path) -> None:
    init_db(settings)
    _job(settings, tmp_path, "train-old", "notes", "ann", 9)
    _job(settings, tmp_path, "train-new", "notes", "bob", 1)
    catalog = Catalog(settings)
    assert catalog.resolve("tiny") is None and catalog.resolve(settings.model_name_or_path) is None
    assert catalog.resolve("notes").id == "train-new"  # type: ignore[union-attr]
    assert catalog.resolve("notes", owner="ann").id == "train-old"  # type: ignore[union-attr]
    assert [a.id for a in catalog.adapters("ann")] == ["train-old"]
    with pytest.raises(ServingError) as hidden:
        catalog.resolve("train-new", owner="ann")
    assert hidden.value.status == 404 and hidden.value.code == "model_not_found"
    assert all(catalog.same_base(a) for a in catalog.adapters())
