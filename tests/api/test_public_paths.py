"""Answers and webhooks name server paths relative to their roots: a job's adapter, its log lines, its events,
its error, its config and its evaluation never show an absolute server path (issue 12), while the database
and the files on disk keep the absolute ones that the workers and the model server load from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skill_adapter import crud, queued, webhooks
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.public_paths import shower
from tests.helpers.api import STORED_REPORT, start


def test_paths_under_a_root_are_shown_relative_to_it(tmp_path: Path) -> None:
    absolute = Settings(_env_file=None, model="tiny", data_dir=tmp_path / "d", checkpoint_dir=tmp_path / "ck")  # type: ignore[call-arg]
    shown = shower(absolute)
    assert shown.text(f"adapter saved to {tmp_path}/ck/train-1/final") == "adapter saved to train-1/final"
    assert shown.text(f"in {tmp_path}/d/models/smollm2-135m-instruct.") == "in smollm2-135m-instruct."
    assert shown.text(f"'{tmp_path}/ck' and {tmp_path}/ckx/a") == f"'.' and {tmp_path}/ckx/a"  # at a boundary only
    assert shown.text("/etc/passwd, Qwen/Qwen3-8B") == "/etc/passwd, Qwen/Qwen3-8B"  # outside every root: as is
    assert shown.value({"a": [f"{tmp_path}/ck/x"], "n": 1, "none": None}) == {"a": ["x"], "n": 1, "none": None}
    import peft

    import skill_adapter.pipeline

    traceback = f'File "{skill_adapter.pipeline.__file__}", line 1\n  File "{peft.__file__}", line 2'
    assert shown.text(traceback) == 'File "skill_adapter/pipeline.py", line 1\n  File "peft/__init__.py", line 2'

    relative = Settings(_env_file=None, model="tiny", checkpoint_dir=Path("checkpoints"))  # type: ignore[call-arg]
    cwd = Path.cwd()
    assert shower(relative).text(f"{cwd}/checkpoints/train-1/final") == "checkpoints/train-1/final"
    assert shower(relative).text(f"loading {Settings(model='tiny').model_name_or_path}") == "loading tiny-qwen3"


def _finished(client: Any, settings: Settings, *, status: str, message: str = "") -> str:
    job_id = start(client).json()["job_id"]
    out = settings.checkpoint_dir.resolve() / job_id
    with session_scope(settings) as session:
        assert queued.claim(session=session, kind=queued.TRAINING, work_id=job_id, worker_id="w")
        crud.add_log(session=session, job_id=job_id, message=f"dataset saved in {out / 'dataset'}")
        crud.add_log(session=session, job_id=job_id, message=f"parsing {settings.skills_root.resolve()}/x/SKILL.md")
        queued.finish(
            session=session,
            kind=queued.TRAINING,
            work_id=job_id,
            status=status,
            adapter_path=str(out / "final") if status == "succeeded" else None,
            error={"code": "training_failed", "message": message} if message else None,
        )
    return job_id


def test_job_answers_and_webhooks_name_no_absolute_server_path(client: Any, settings: Settings, tmp_path: Path) -> None:
    secret = str(tmp_path)
    good = _finished(client, settings, status="succeeded")
    bad = _finished(
        client, settings, status="failed", message=f"OSError: cannot read {settings.checkpoint_dir.resolve()}/x"
    )
    with session_scope(settings) as session:  # the database keeps the absolute path the workers load from
        assert crud.get_job(session=session, job_id=good).adapter_path == str(
            settings.checkpoint_dir.resolve() / good / "final"
        )
        crud.create_evaluation(session=session, evaluation_id="eval-1", job_id=good, params={})
        assert queued.claim(session=session, kind=queued.EVALUATION, work_id="eval-1", worker_id="w")
        report_folder = settings.checkpoint_dir.resolve() / good / "evaluations" / "eval-1"
        queued.finish(
            session=session,
            kind=queued.EVALUATION,
            work_id="eval-1",
            status="succeeded",
            report={**STORED_REPORT, "adapter_path": str(settings.checkpoint_dir.resolve() / good / "final")},
            report_path=str(report_folder / "report.md"),
        )

    status = client.get(f"/api/training/{good}/status").json()
    assert status["adapter_path"] == f"{good}/final"  # the fixture's checkpoint folder is an absolute one
    answers = [
        client.get(f"/api/training/{good}/status"),
        client.get(f"/api/training/{bad}/status"),
        client.get("/api/training"),
        client.get(f"/api/training/{good}/logs"),
        client.get(f"/api/training/{good}/events"),
        client.get(f"/api/training/{bad}/events"),
        client.get(f"/api/training/{good}/checkpoints"),
        client.get(f"/api/training/{good}/evaluation"),
        client.get(f"/api/training/{good}/evaluations"),
    ]
    for resp in answers:
        assert resp.status_code == 200, resp.text
        assert secret not in resp.text, resp.text
    assert client.get(f"/api/training/{bad}/status").json()["error"]["message"] == "OSError: cannot read x"
    assert [line["message"] for line in answers[3].json()["lines"]][-2:] == [
        f"dataset saved in {good}/dataset",
        "parsing x/SKILL.md",
    ]
    succeeded = next(e for e in answers[4].json()["data"] if e["type"] == "succeeded")
    assert succeeded["data"]["adapter_path"] == f"{good}/final" and secret not in succeeded["message"]
    evaluation = answers[7].json()
    assert evaluation["report_path"] == f"{good}/evaluations/eval-1/report.md"
    assert evaluation["report"]["adapter_path"] == f"{good}/final"

    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=good)
        event = crud.read_events(session=session, job_id=good, after=0, limit=100)[-1]
        body = json.dumps(webhooks.payload(job, event, shower(settings)))
    assert secret not in body and json.loads(body)["data"]["adapter_path"] == f"{good}/final"


def test_config_names_the_base_model_relative_to_its_root(client: Any, settings: Settings, tmp_path: Path) -> None:
    """/api/config shows the base model's folder as every other answer shows paths (issue 11)."""
    from fastapi.testclient import TestClient

    from skill_adapter.api.main import create_app
    from skill_adapter.assets import TINY_MODEL_DIR

    response = client.get("/api/config")
    body = response.json()
    assert body["model"] == body["base_model"]["path"] == "tiny-qwen3"
    assert body["base_model"]["name"] == "tiny" and body["base_model"]["ready"] is True
    assert str(TINY_MODEL_DIR.parent) not in response.text and str(tmp_path) not in response.text

    models = tmp_path / "models"  # the built-in real model, converted on first use into the models folder
    real = settings.model_copy(update={"model": "smollm2-135m-instruct", "models_dir": models})
    with TestClient(create_app(real, enqueue=lambda _job_id: None, run_sweeper=False)) as other:
        response = other.get("/api/config")
    base = response.json()["base_model"]
    assert base["name"] == "smollm2-135m-instruct" and base["converts_on_first_use"] is True
    assert response.json()["model"] == base["path"] == "smollm2-135m-instruct"
    assert str(tmp_path) not in response.text


def test_preview_names_the_model_and_its_tokenizer_relative_to_their_root(client: Any) -> None:
    skill = client.get("/api/skills").json()["data"][0]["path"]
    response = client.post("/api/skills/preview", json={"skill_path": skill})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "tiny-qwen3"
    assert body["dataset_stats"]["tokens"] == {**body["dataset_stats"]["tokens"], "exact": True}
    assert body["dataset_stats"]["tokens"]["tokenizer"] == "tiny-qwen3/tokenizer.json"
    assert '"/' not in response.text  # no absolute path anywhere in the answer
