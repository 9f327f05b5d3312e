"""The evaluation routes on a temporary database, with a recording enqueue (the runner is tested apart)."""

from __future__ import annotations

import json
from typing import Any

from skill_adapter import crud, queued
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.queued import TRAINING
from tests.helpers.api import GUIDE_BODY, STORED_REPORT, assert_error

HELD_OUT = {
    "prompt": [{"role": "user", "content": "How should a commit summary look?"}],
    "completion": [{"role": "assistant", "content": "Imperative, at most 72 characters."}],
    "generator": "procedure",
    "section": "Format",
}


def succeeded_job(client: Any, settings: Settings, *, weights: str = "adapter_model.safetensors") -> str:
    """A job row that finished with an adapter folder on disk (its files' contents do not matter here)."""
    job_id = client.post("/api/training/start", json=GUIDE_BODY).json()["job_id"]
    out = settings.checkpoint_dir.resolve() / job_id
    (out / "final").mkdir(parents=True)
    (out / "final" / "adapter_config.json").write_text("{}", encoding="utf-8")
    (out / "final" / weights).write_bytes(b"0")
    (out / "dataset").mkdir()
    (out / "dataset" / "held_out.jsonl").write_text(json.dumps(HELD_OUT) + "\n", encoding="utf-8")
    with session_scope(settings) as session:
        assert queued.claim(session=session, kind=TRAINING, work_id=job_id, worker_id="test")
        crud.update_job(session=session, job_id=job_id, output_dir=str(out))
        queued.finish(
            session=session, kind=TRAINING, work_id=job_id, status="succeeded", adapter_path=str(out / "final")
        )
    return job_id


def test_evaluate_answers_202_and_enqueues_the_evaluation_id(
    client: Any, settings: Settings, enqueued: list[str]
) -> None:
    job_id = succeeded_job(client, settings)
    resp = client.post(f"/api/training/{job_id}/evaluate")
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert set(body) == {"evaluation_id", "job_id", "status", "created_at"}
    assert body["evaluation_id"].startswith("eval-") and body["status"] == "queued" and body["job_id"] == job_id
    assert enqueued[-1] == body["evaluation_id"]

    latest = client.get(f"/api/training/{job_id}/evaluation").json()
    assert latest["evaluation_id"] == body["evaluation_id"]
    assert latest["status"] == "queued" and latest["report"] is None and latest["progress"] == 0
    assert latest["params"]["source"] == "held_out"
    assert latest["params"]["max_new_tokens"] == settings.eval_max_new_tokens

    second = client.post(f"/api/training/{job_id}/evaluate", json={"max_new_tokens": 8, "limit": 1}).json()
    listed = client.get(f"/api/training/{job_id}/evaluations").json()
    assert listed["count"] == 2
    assert [e["evaluation_id"] for e in listed["data"]] == [second["evaluation_id"], body["evaluation_id"]]
    one = client.get(f"/api/training/{job_id}/evaluations/{body['evaluation_id']}").json()
    assert one["evaluation_id"] == body["evaluation_id"] and "report" in one


def test_evaluate_accepts_inline_evals(client: Any, settings: Settings) -> None:
    job_id = succeeded_job(client, settings)
    evals = {"evals": [{"id": 1, "prompt": "Say ok", "expected_output": "ok", "exact": True}]}
    resp = client.post(f"/api/training/{job_id}/evaluate", json={"evals": evals})
    assert resp.status_code == 202, resp.text
    latest = client.get(f"/api/training/{job_id}/evaluation").json()
    assert latest["params"]["source"] == "evals" and latest["params"]["evals_cases"] == 1


def test_unknown_job_is_404(client: Any) -> None:
    assert_error(client.post("/api/training/train-000000000000/evaluate"), 404, "job_not_found")
    assert_error(client.get("/api/training/train-000000000000/evaluation"), 404, "job_not_found")
    assert_error(client.get("/api/training/train-000000000000/evaluations"), 404, "job_not_found")


def test_job_that_has_not_succeeded_is_409(client: Any, enqueued: list[str]) -> None:
    job_id = client.post("/api/training/start", json=GUIDE_BODY).json()["job_id"]
    error = assert_error(client.post(f"/api/training/{job_id}/evaluate"), 409, "job_state_conflict")
    assert "queued" in error["message"]
    assert enqueued == [job_id]  # nothing more was sent


def test_no_evaluation_yet_is_404_with_the_command_to_run(client: Any, settings: Settings) -> None:
    job_id = succeeded_job(client, settings)
    error = assert_error(client.get(f"/api/training/{job_id}/evaluation"), 404, "evaluation_not_found")
    assert f"/api/training/{job_id}/evaluate" in error["message"]
    assert_error(client.get(f"/api/training/{job_id}/evaluations/eval-000000000000"), 404, "evaluation_not_found")


def test_an_evaluation_of_another_job_is_not_found_under_this_one(client: Any, settings: Settings) -> None:
    first, second = succeeded_job(client, settings), succeeded_job(client, settings)
    evaluation_id = client.post(f"/api/training/{first}/evaluate").json()["evaluation_id"]
    assert_error(client.get(f"/api/training/{second}/evaluations/{evaluation_id}"), 404, "evaluation_not_found")


def test_pickled_adapter_weights_are_refused(client: Any, settings: Settings, enqueued: list[str]) -> None:
    job_id = succeeded_job(client, settings, weights="adapter_model.bin")
    error = assert_error(client.post(f"/api/training/{job_id}/evaluate"), 422, "adapter_not_safetensors")
    assert "adapter_model.bin" in error["message"]
    assert not enqueued[1:]


def test_bad_bodies(client: Any, settings: Settings, enqueued: list[str]) -> None:
    job_id = succeeded_job(client, settings)
    url = f"/api/training/{job_id}/evaluate"
    headers = {"Content-Type": "application/json"}
    assert_error(client.post(url, content=b"{oops", headers=headers), 400, "invalid_json")
    assert_error(client.post(url, content=b"[1]", headers=headers), 422, "invalid_parameter")
    error = assert_error(client.post(url, json={"max_new_tokens": 0}), 422, "invalid_parameter")
    assert "max_new_tokens" in error["message"]
    assert_error(client.post(url, json={"temperature": 0.7}), 422, "invalid_parameter")
    assert_error(client.post(url, json={"source": "web"}), 422, "invalid_parameter")
    error = assert_error(client.post(url, json={"evals": {"evals": [{"prompt": "p"}]}}), 422, "invalid_evals")
    assert "expected_output" in error["message"]
    bad_source = {"source": "held_out", "evals": {"evals": [{"prompt": "p", "expected_output": "x"}]}}
    assert_error(client.post(url, json=bad_source), 422, "invalid_parameter")
    # the example skill ships no evals/evals.json
    assert_error(client.post(url, json={"source": "evals"}), 422, "evals_not_found")
    assert enqueued == [job_id]
    assert client.get(f"/api/training/{job_id}/evaluations").json()["count"] == 0


def test_a_stored_report_is_answered_as_it_was_written(client: Any, settings: Settings) -> None:
    """The report has a declared schema now; a report from before some of its fields is still answered
    byte for byte: absent fields stay absent (not null) and unknown keys pass through."""
    job_id = succeeded_job(client, settings)
    evaluation_id = client.post(f"/api/training/{job_id}/evaluate").json()["evaluation_id"]
    with session_scope(settings) as session:
        assert queued.claim(session=session, kind=queued.EVALUATION, work_id=evaluation_id, worker_id="w")
        assert queued.finish(
            session=session, kind=queued.EVALUATION, work_id=evaluation_id, status="succeeded", report=STORED_REPORT
        )
    latest = client.get(f"/api/training/{job_id}/evaluation")
    assert latest.status_code == 200, latest.text
    assert latest.json()["report"] == STORED_REPORT
    assert client.get(f"/api/training/{job_id}/evaluations/{evaluation_id}").json()["report"] == STORED_REPORT
