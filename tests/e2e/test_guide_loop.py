"""The guide's whole loop against the real service: uvicorn plus a Celery worker on the embedded broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.api import GUIDE_BODY
from tests.helpers.noise import foreign_lines
from tests.helpers.processes import (
    JOB_PATIENCE,
    STOP_PATIENCE,
    CliProcess,
    alive,
    descendants,
    running_serve,
    service_env,
    wait_for_job,
    wait_until,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def service(tmp_path: Path, skills_root: Path) -> Iterator[tuple[str, CliProcess]]:
    with running_serve(env=service_env(tmp_path, skills_root), cwd=tmp_path) as (base, process):
        yield base, process


def test_guide_curl_trains_an_adapter_that_peft_loads(service: tuple[str, CliProcess], tmp_path: Path) -> None:
    base, _ = service
    # Exactly the guide's curl: a JSON body with Content-Type: application/json.
    resp = httpx.post(
        f"{base}/api/training/start",
        content=json.dumps(GUIDE_BODY),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]
    assert resp.json()["status"] == "queued"

    status = wait_for_job(base, job_id, {"succeeded", "failed", "cancelled"})
    logs = httpx.get(f"{base}/api/training/{job_id}/logs", params={"limit": 1000}).json()
    assert status["status"] == "succeeded", (status, [ln["message"] for ln in logs["lines"]][-20:])
    # serve, its embedded worker and the training process printed no warning that is not ours
    assert foreign_lines((tmp_path / "service.log").read_text(errors="replace")) == []
    assert status["progress"] == 1.0
    assert status["current_epoch"] == status["total_epochs"] == 3
    assert status["loss"] is not None and status["started_at"] is not None

    metrics = httpx.get(f"{base}/api/training/{job_id}/metrics").json()["points"]
    losses = [p["loss"] for p in metrics if p["loss"] is not None]
    assert len(losses) >= 3
    assert all(p["learning_rate"] is not None for p in metrics if p["loss"] is not None)
    assert any("step" in ln["message"] for ln in logs["lines"])

    job_dir = tmp_path / "checkpoints" / job_id
    final = job_dir / "final"
    assert (final / "adapter_config.json").is_file()
    assert (final / "adapter_model.safetensors").is_file()
    checkpoints = sorted(job_dir.glob("checkpoint-*"))
    assert checkpoints, "every epoch end saves a checkpoint"
    for folder in checkpoints:
        assert (folder / "adapter_model.safetensors").is_file()
        assert (folder / "optimizer.pt").is_file()
        assert (folder / "COMPLETE").is_file()
    listed = httpx.get(f"{base}/api/training/{job_id}/checkpoints").json()["data"]
    assert {c["name"] for c in listed} == {p.name for p in checkpoints} | {"final"}

    # The guide's Python snippet, with the base model named by the adapter itself.
    code = f"""
import json, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
final = {str(final)!r}
base_name = json.load(open(final + "/adapter_config.json"))["base_model_name_or_path"]
base_model = AutoModelForCausalLM.from_pretrained(base_name)
model = PeftModel.from_pretrained(base_model, final)
lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
assert lora_b and any(p.abs().sum() > 0 for p in lora_b), "adapter weights did not move"
print("LOADED", type(model).__name__)
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LOADED PeftModelForCausalLM" in out.stdout

    jobs = httpx.get(f"{base}/api/training").json()
    assert jobs["count"] == 1 and jobs["data"][0]["job_id"] == job_id


def test_queued_job_survives_a_service_restart(tmp_path: Path, skills_root: Path) -> None:
    """A job accepted while no worker runs is picked up by the next service start (sweeper)."""
    env = service_env(tmp_path, skills_root)
    with running_serve("--no-worker", env=env, cwd=tmp_path) as (base, api_only):
        job_id = httpx.post(f"{base}/api/training/start", json={**GUIDE_BODY, "num_epochs": 1}).json()["job_id"]
        api_only.proc.kill()  # dies hard: the job is queued, its message may or may not be in the broker
    # Lose the broker's copy too: only the job row remains.
    for msg in (tmp_path / "data" / "broker" / "queue").glob("*"):
        msg.unlink()

    with running_serve(env=env, cwd=tmp_path) as (base, _):
        assert wait_for_job(base, job_id, {"succeeded", "failed"})["status"] == "succeeded"


def test_running_job_resumes_after_the_whole_service_is_killed(tmp_path: Path, skills_root: Path) -> None:
    """kill -9 of `skill-adapter serve` mid-training; the next start takes the job back and resumes it."""
    env = {**service_env(tmp_path, skills_root), "SKILL_ADAPTER_JOB_LEASE_SECONDS": "3"}
    body = {**GUIDE_BODY, "num_epochs": 4, "batch_size": 1, "learning_rate": 1e-3}
    with running_serve(env=env, cwd=tmp_path) as (base, process):
        job_id = httpx.post(f"{base}/api/training/start", json=body).json()["job_id"]
        wait_until(
            lambda: httpx.get(f"{base}/api/training/{job_id}/checkpoints").json()["data"],
            JOB_PATIENCE,
            "a checkpoint before the kill",
        )
        below = descendants(process.pid)  # the embedded worker and its training process
        assert below, "serve has no worker process to kill"
        process.proc.kill()  # SIGKILL: no clean-up; the worker and its training process die with it
        # The next service must not start while the old trainer still writes to the job's folder.
        wait_until(lambda: not any(alive(pid) for pid in below), STOP_PATIENCE, "the killed service's children")

    with running_serve(env=env, cwd=tmp_path) as (base, _):
        status = wait_for_job(base, job_id, {"succeeded", "failed", "cancelled"})
        assert status["status"] == "succeeded", (
            status,
            httpx.get(f"{base}/api/training/{job_id}/logs", params={"limit": 1000}).json(),
        )
        assert status["attempts"] == 2
        assert status["step"] == status["total_steps"]
        lines = httpx.get(f"{base}/api/training/{job_id}/logs", params={"limit": 1000}).json()["lines"]
        messages = [line["message"] for line in lines]
        assert any("stopped sending heartbeats" in m for m in messages)
        assert any(m.startswith("resuming from checkpoint-") for m in messages)


def test_guide_evaluate_runs_on_the_worker_and_serves_the_report(
    service: tuple[str, CliProcess], tmp_path: Path
) -> None:
    """The guide's POST /evaluate: a queued evaluation that the embedded worker runs to a stored report."""
    base, _ = service
    job_id = httpx.post(f"{base}/api/training/start", json={**GUIDE_BODY, "num_epochs": 1}).json()["job_id"]
    assert wait_for_job(base, job_id, {"succeeded", "failed", "cancelled"})["status"] == "succeeded"

    resp = httpx.post(f"{base}/api/training/{job_id}/evaluate", json={"max_new_tokens": 8, "limit": 3})
    assert resp.status_code == 202, resp.text
    evaluation_id = resp.json()["evaluation_id"]

    def finished() -> dict[str, Any] | None:
        latest = httpx.get(f"{base}/api/training/{job_id}/evaluation", timeout=5).json()
        assert latest["evaluation_id"] == evaluation_id and "status" in latest
        return latest if latest["status"] in ("succeeded", "failed") else None

    latest = wait_until(finished, JOB_PATIENCE, f"evaluation {evaluation_id} to end", interval=0.5)
    assert latest["status"] == "succeeded", latest
    report = latest["report"]
    assert report["num_examples"] == 3 and set(report["arms"]) == {"base", "base_with_skill", "adapter"}
    assert all(report["arms"][arm]["perplexity"] > 0 for arm in report["arms"])
    markdown = tmp_path / "checkpoints" / job_id / "evaluations" / evaluation_id / "report.md"
    assert markdown.read_text(encoding="utf-8").startswith(f"# Evaluation {evaluation_id}")
    assert httpx.get(f"{base}/api/training/{job_id}/evaluations").json()["count"] == 1
