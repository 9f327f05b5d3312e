"""A tiny-model job with ``report_to: ["trackio"]`` logs its curves to trackio's local store (no Space, no
network: the tests run with ``HF_HUB_OFFLINE=1``), read back here through trackio's own storage API."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from skill_adapter import crud
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.pipeline import execute_job
from tests.helpers.jobs import make_job

pytestmark = pytest.mark.slow


def test_trackio_receives_the_jobs_curves(
    settings: Settings, skills_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("trackio")
    store = tmp_path / "trackio"
    # trackio reads TRACKIO_DIR when it is imported: in the training child (a fresh process) and, below, here.
    monkeypatch.setenv("TRACKIO_DIR", str(store))
    monkeypatch.delenv("TRACKIO_SPACE_ID", raising=False)
    for name in [m for m in sys.modules if m == "trackio" or m.startswith("trackio.")]:
        monkeypatch.delitem(sys.modules, name)

    job_id = make_job(
        settings,
        skills_root,
        num_epochs=2,
        batch_size=8,
        gradient_accumulation_steps=1,
        learning_rate=5e-3,
        report_to=["trackio"],
    )
    assert execute_job(job_id, settings=settings) == "succeeded"
    with session_scope(settings) as session:
        points = crud.read_metrics(session=session, job_id=job_id, after=0, limit=1000)
    ours = [p.loss for p in points if p.loss is not None]

    from trackio.sqlite_storage import SQLiteStorage

    # The project is named after the skill, the run after the job; the store is the folder named above.
    assert SQLiteStorage.get_project_db_path("commit-messages").is_relative_to(store)
    assert SQLiteStorage.get_runs("commit-messages") == [job_id]
    logs = SQLiteStorage.get_logs("commit-messages", job_id)
    losses = [row["train/loss"] for row in logs if "train/loss" in row]
    eval_losses = [row["eval/loss"] for row in logs if "eval/loss" in row]
    assert len(losses) == len(ours) >= 2 and losses == pytest.approx(ours, rel=1e-4)
    assert losses[-1] < losses[0]
    assert len(eval_losses) == 2  # one validation per epoch
    steps = [row["train/global_step"] for row in logs if "train/loss" in row]
    assert steps == sorted(steps) and steps[-1] > steps[0]
    config = SQLiteStorage.get_run_config("commit-messages", job_id)
    assert config and config["run_name"] == job_id
