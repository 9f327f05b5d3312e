"""The training routes on a temporary SQLite database, with a recording enqueue."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from skill_adapter import crud, queued
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.models import Job
from skill_adapter.queued import TRAINING
from tests.helpers.api import GUIDE_BODY, assert_error, start


def test_start_training_answers_202_like_the_guide(client: Any, enqueued: list[str], settings: Settings) -> None:
    resp = start(client)
    assert resp.status_code == 202
    body = resp.json()
    assert set(body) == {"job_id", "status", "created_at"}
    assert body["job_id"].startswith("train-")
    assert body["status"] == "queued"
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")
    assert enqueued == [body["job_id"]]


def test_job_is_committed_before_it_is_enqueued(settings: Settings) -> None:
    from fastapi.testclient import TestClient

    from skill_adapter.api.main import create_app

    seen: list[str | None] = []

    def enqueue(job_id: str) -> None:  # another connection must already see the row
        with session_scope(settings) as session:
            seen.append(session.get(Job, job_id).status if session.get(Job, job_id) else None)

    with TestClient(create_app(settings, enqueue=enqueue, run_sweeper=False)) as client:
        assert start(client).status_code == 202
    assert seen == ["queued"]


def test_start_stores_full_resolved_config(client: Any, settings: Settings) -> None:
    job_id = start(client, {"skill_path": "commit-messages", "lora_r": 8}).json()["job_id"]
    config = client.get(f"/api/training/{job_id}/status").json()["config"]
    assert config["lora_r"] == 8
    assert config["num_epochs"] == settings.num_epochs == 3
    assert config["learning_rate"] == 2e-4
    assert config["gradient_accumulation_steps"] == 4
    assert config["max_seq_length"] == 2048
    assert config["lora_alpha"] == 32
    assert config["lora_dropout"] == 0.05
    assert config["save_steps"] == 100
    # The model as from_pretrained loads it, named relative to its folder (the package's assets for "tiny").
    assert config["model"] == "tiny-qwen3" and settings.model_name_or_path.endswith("/tiny-qwen3")


def test_start_accepts_absolute_path_inside_root(client: Any, skills_root: Path) -> None:
    body = {**GUIDE_BODY, "skill_path": str(skills_root / "release-notes" / "SKILL.md")}
    assert start(client, body).status_code == 202


def test_start_accepts_qlora_when_bitsandbytes_is_installed(client: Any) -> None:
    pytest.importorskip("bitsandbytes")
    resp = start(client, {**GUIDE_BODY, "adapter_type": "qlora", "quant_bits": 8})
    assert resp.status_code == 202


def test_status_has_the_guide_fields(client: Any) -> None:
    job_id = start(client).json()["job_id"]
    status = client.get(f"/api/training/{job_id}/status").json()
    for field in ("job_id", "status", "progress", "current_epoch", "total_epochs", "loss", "started_at"):
        assert field in status
    assert status["status"] == "queued"
    assert status["progress"] == 0
    assert status["total_epochs"] == 3
    assert status["error"] is None


def test_list_jobs_newest_first_with_count(client: Any) -> None:
    ids = [start(client).json()["job_id"] for _ in range(3)]
    page = client.get("/api/training", params={"limit": 2}).json()
    assert page["count"] == 3
    assert [j["job_id"] for j in page["data"]] == ids[::-1][:2]
    rest = client.get("/api/training", params={"limit": 2, "offset": 2}).json()
    assert [j["job_id"] for j in rest["data"]] == [ids[0]]


def test_logs_are_cursor_paged(client: Any, settings: Settings) -> None:
    job_id = start(client).json()["job_id"]
    with session_scope(settings) as session:
        for i in range(5):
            crud.add_log(session=session, job_id=job_id, message=f"line {i}")
    first = client.get(f"/api/training/{job_id}/logs", params={"limit": 3}).json()
    assert [ln["message"] for ln in first["lines"]] == ["line 0", "line 1", "line 2"]
    assert {"id", "ts", "level", "message"} <= set(first["lines"][0])
    second = client.get(f"/api/training/{job_id}/logs", params={"after": first["next"]}).json()
    assert [ln["message"] for ln in second["lines"]] == ["line 3", "line 4"]
    empty = client.get(f"/api/training/{job_id}/logs", params={"after": second["next"]}).json()
    assert empty == {"lines": [], "next": second["next"]}


def test_cancel_queued_job_then_again_then_finished(client: Any, settings: Settings) -> None:
    job_id = start(client).json()["job_id"]
    assert client.post(f"/api/training/{job_id}/cancel").json()["status"] == "cancelled"
    assert client.post(f"/api/training/{job_id}/cancel").json()["status"] == "cancelled"
    other = start(client).json()["job_id"]
    with session_scope(settings) as session:
        assert queued.claim(session=session, kind=TRAINING, work_id=other, worker_id="t")
        queued.finish(session=session, kind=TRAINING, work_id=other, status="succeeded")
    assert_error(client.post(f"/api/training/{other}/cancel"), 409, "job_state_conflict")


def test_claim_is_compare_and_set(client: Any, settings: Settings) -> None:
    job_id = start(client).json()["job_id"]
    with session_scope(settings) as session:
        assert queued.claim(session=session, kind=TRAINING, work_id=job_id, worker_id="a")
    with session_scope(settings) as session:
        assert not queued.claim(session=session, kind=TRAINING, work_id=job_id, worker_id="b")
        job = session.scalars(select(Job).where(Job.id == job_id)).one()
        assert (job.status, job.worker_id, job.attempts) == ("running", "a", 1)


# --- bad input -------------------------------------------------------------------------------------


def test_body_not_json(client: Any) -> None:
    resp = client.post("/api/training/start", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "invalid_json")


def test_body_not_an_object(client: Any) -> None:
    assert_error(start(client, [1, 2]), 422, "invalid_parameter")


def test_missing_skill_path(client: Any) -> None:
    error = assert_error(start(client, {"num_epochs": 1}), 422, "invalid_parameter")
    assert "skill_path" in error["message"]


def test_unknown_field(client: Any) -> None:
    error = assert_error(start(client, {**GUIDE_BODY, "epochs": 2}), 422, "invalid_parameter")
    assert "epochs" in error["message"]


@pytest.mark.parametrize(
    ("field", "value", "range_words"),
    [
        ("num_epochs", 0, "1 to 1000"),
        ("num_epochs", 1001, "1 to 1000"),
        ("num_epochs", "three", "1 to 1000"),
        ("num_epochs", 1.5, "1 to 1000"),
        ("learning_rate", 0, "greater than 0"),
        ("learning_rate", 1.5, "at most 1"),
        ("batch_size", 0, "1 to 1024"),
        ("batch_size", 1025, "1 to 1024"),
        ("gradient_accumulation_steps", 0, "1 to 1024"),
        ("max_seq_length", 15, "16"),
        ("max_seq_length", 10**6, "16"),
        ("lora_r", 0, "1 to 256"),
        ("lora_r", 257, "1 to 256"),
        ("lora_alpha", 0, "greater than 0"),
        ("lora_dropout", 1, "1 (exclusive)"),
        ("lora_dropout", -0.1, "0 (inclusive)"),
        ("quant_bits", 3, "4 or 8"),
        ("adapter_type", "full", "lora"),
        ("skill_path", 5, "SKILL.md"),
        ("recipe", "recite", '"distill"'),
        ("distill_loss", "mse", '"kl"'),
        ("distill_prompts", 513, "0 to 512"),
        ("teacher_max_new_tokens", 4, "8 to 2048"),
        ("teacher_temperature", 3, "0 (greedy) to 2"),
        ("distill_top_k", -1, "0 to 1024"),
    ],
)
def test_out_of_range_parameters(client: Any, field: str, value: Any, range_words: str) -> None:
    error = assert_error(start(client, {**GUIDE_BODY, field: value}), 422, "invalid_parameter")
    assert field in error["message"]
    assert range_words in error["message"]


def test_recipe_defaults_and_choice_are_stored(client: Any) -> None:
    body = start(client, {**GUIDE_BODY, "recipe": "distill", "distill_loss": "sft", "distill_prompts": 0}).json()
    config = client.get(f"/api/training/{body['job_id']}/status").json()["config"]
    assert config["recipe"] == "distill" and config["distill_loss"] == "sft" and config["distill_prompts"] == 0
    assert config["teacher_max_new_tokens"] == 128 and config["distill_top_k"] == 64
    defaults = client.get("/api/config").json()["defaults"]
    assert defaults["recipe"] == "template"  # the tests' environment pins it (and so does the server default, for now)
    dataset = client.get(f"/api/training/{body['job_id']}/dataset").json()
    assert dataset == {"job_id": body["job_id"], "recipe": "distill", "summary": None, "examples": [], "count": 0}


@pytest.mark.parametrize("skill_path", ["../outside/SKILL.md", "/etc/passwd", "commit-messages/../../x"])
def test_path_outside_root(client: Any, skill_path: str) -> None:
    assert_error(start(client, {**GUIDE_BODY, "skill_path": skill_path}), 403, "path_outside_root")


def test_symlink_leading_out_of_root(client: Any, skills_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "SKILL.md").write_text("---\nname: x\ndescription: y\n---\nbody\n")
    os.symlink(outside, skills_root / "sneaky")
    resp = start(client, {**GUIDE_BODY, "skill_path": "sneaky/SKILL.md"})
    assert_error(resp, 403, "path_outside_root")


@pytest.mark.parametrize("skill_path", ["nope/SKILL.md", "commit-messages/missing.md", "."])
def test_skill_not_found(client: Any, skill_path: str) -> None:
    assert_error(start(client, {**GUIDE_BODY, "skill_path": skill_path}), 404, "skill_not_found")


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\x01\x02binary\x00\xff" * 50,
        "---\nname: x\ndescription: caf\xe9\n---\nbody\n".encode("latin-1"),
        b"---\n- a\n- b\n---\nbody text\n",
        b"---\nname: x\ndescription: !!python/object/apply:os.system ['true']\n---\nbody\n",
        b"---\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
        b"name: x\ndescription: y\n---\nbody\n",
    ],
    ids=["binary", "not-utf8", "not-a-mapping", "python-tag", "alias-bomb"],
)
def test_unusable_skill(client: Any, skills_root: Path, content: bytes) -> None:
    (skills_root / "bad").mkdir()
    (skills_root / "bad" / "SKILL.md").write_bytes(content)
    assert_error(start(client, {**GUIDE_BODY, "skill_path": "bad/SKILL.md"}), 422, "skill_invalid")


def test_unknown_job(client: Any) -> None:
    for path in ("status", "logs", "metrics", "checkpoints"):
        assert_error(client.get(f"/api/training/train-doesnotexist/{path}"), 404, "job_not_found")
    assert_error(client.post("/api/training/train-doesnotexist/cancel"), 404, "job_not_found")


def test_bad_query_parameters(client: Any) -> None:
    assert_error(client.get("/api/training", params={"limit": 0}), 422, "invalid_parameter")
    assert_error(client.get("/api/training", params={"offset": "x"}), 422, "invalid_parameter")


def test_body_too_large(client: Any) -> None:
    resp = client.post("/api/training/start", content=b" " * 1_000_001, headers={"Content-Type": "application/json"})
    assert_error(resp, 413, "payload_too_large")


def test_rejected_requests_create_no_job(client: Any, settings: Settings, enqueued: list[str]) -> None:
    start(client, {**GUIDE_BODY, "num_epochs": 0})
    start(client, {**GUIDE_BODY, "skill_path": "../x"})
    with session_scope(settings) as session:
        assert crud.list_jobs(session=session, limit=10, offset=0)[1] == 0
    assert enqueued == []
