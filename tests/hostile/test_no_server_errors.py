"""Each request that once got a 500 (or was refused although schema-valid, or accepted although it could
only fail later) now gets its clear answer: one regression test per case found by the fuzzer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from skill_adapter.api.main import create_app
from skill_adapter.core.config import Settings
from tests.helpers.api import SKILL, assert_error, upload


def test_a_path_component_too_long_for_the_file_system(client: Any) -> None:
    for name in ("a" * 256, "a" * 256 + "/SKILL.md", "commit-messages/" + "b" * 300):
        for url in ("/api/training/start", "/api/skills/preview"):
            error = assert_error(client.post(url, json={"skill_path": name}), 422, "invalid_parameter")
            assert "skill_path" in error["message"]


def test_a_long_path_on_the_dashboard_is_a_404_page_not_a_500(settings: Settings, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<html>dashboard</html>")
    with TestClient(create_app(settings, enqueue=lambda _: None, run_sweeper=False, dashboard=dist)) as client:
        resp = client.get("/" + "c" * 300)
        assert resp.status_code == 200 and "dashboard" in resp.text  # the app's index, as for any page


@pytest.mark.parametrize("depth", [100, 5_000, 100_000])
def test_deeply_nested_json(client: Any, depth: int) -> None:
    body = '{"skill_path": "commit-messages", "x": ' + "[" * depth + "]" * depth + "}"
    for url in ("/api/training/start", "/api/skills/preview", "/api/training/train-000000000000/evaluate"):
        resp = client.post(url, content=body, headers={"content-type": "application/json"})
        assert_error(resp, 400, "invalid_json")


@pytest.mark.parametrize("constant", ["Infinity", "-Infinity", "NaN"])
def test_json_constants_that_are_not_json(client: Any, constant: str) -> None:
    body = '{"skill_path": "commit-messages", "lora_alpha": ' + constant + "}"
    resp = client.post("/api/training/start", content=body, headers={"content-type": "application/json"})
    assert_error(resp, 400, "invalid_json")


def test_cursors_and_offsets_past_64_bits(client: Any) -> None:
    job_id = client.post("/api/training/start", json={"skill_path": "commit-messages"}).json()["job_id"]
    for value in (2**63, 2**64, 10**30):
        assert_error(client.get(f"/api/training?offset={value}"), 422, "invalid_parameter")
        assert_error(client.get(f"/api/training/{job_id}/logs?after={value}"), 422, "invalid_parameter")
        assert_error(client.get(f"/api/training/{job_id}/metrics?after={value}"), 422, "invalid_parameter")
    largest = 2**63 - 1
    assert client.get(f"/api/training?offset={largest}").json()["data"] == []
    assert client.get(f"/api/training/{job_id}/logs?after={largest}").json()["lines"] == []
    assert client.get(f"/api/training/{job_id}/metrics?after={largest}").json()["points"] == []


def test_an_unsupported_method_answers_405_with_allow(client: Any) -> None:
    for method, url, allowed in (
        ("TRACE", "/api/training/start", "POST"),
        ("DELETE", "/api/health", "GET"),
        ("PUT", "/api/training/x/status", "GET"),
    ):
        resp = client.request(method, url)
        assert_error(resp, 405, "method_not_allowed")
        assert allowed in resp.headers["allow"]


def test_every_error_status_is_declared_with_the_error_body(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    start = schema["paths"]["/api/training/start"]["post"]["responses"]
    assert {"202", "400", "403", "404", "413", "422", "503"} <= set(start)
    assert start["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    cancel = schema["paths"]["/api/training/{job_id}/cancel"]["post"]["responses"]
    assert {"404", "409"} <= set(cancel)
    assert "HTTPValidationError" not in json.dumps(schema)


def test_integral_floats_are_integers_as_the_schema_says(client: Any) -> None:
    job_id = client.post("/api/training/start", json={"skill_path": "commit-messages", "num_epochs": 2.0}).json()[
        "job_id"
    ]
    assert client.get(f"/api/training/{job_id}/status").json()["config"]["num_epochs"] == 2
    # Accepted as a body: the job exists but has not succeeded, so the answer is the state conflict.
    resp = client.post(f"/api/training/{job_id}/evaluate", json={"max_new_tokens": 237.0})
    assert_error(resp, 409, "job_state_conflict")
    assert_error(
        client.post("/api/training/start", json={"skill_path": "commit-messages", "num_epochs": 2.5}),
        422,
        "invalid_parameter",
    )


def test_any_file_name_is_read_by_its_content(client: Any) -> None:
    resp = upload(client, "/api/skills/preview", "skill.gif", SKILL.encode())
    assert resp.status_code == 200, resp.text
    gif = upload(client, "/api/skills/preview", "real.gif", b"GIF89a\x01\x00\x00\x00\x00")
    assert "its content is a GIF image" in assert_error(gif, 422, "invalid_parameter")["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lora_alpha", 1e308),
        ("lora_alpha", 4097),
        ("seed", 2**32),
        ("seed", -1),
        ("save_steps", 10**7),
        ("max_seq_length", 2**40),
        ("learning_rate", 1.5),
    ],
)
def test_out_of_range_hyper_parameters_are_refused_before_a_job_exists(client: Any, field: str, value: Any) -> None:
    resp = client.post("/api/training/start", json={"skill_path": "commit-messages", field: value})
    error = assert_error(resp, 422, "invalid_parameter")
    assert error["fields"] == [field]
    assert client.get("/api/training").json()["count"] == 0


@pytest.mark.parametrize("value", ["inf", "nan", "1e308"])
def test_non_finite_form_fields_are_refused(client: Any, value: str) -> None:
    resp = upload(client, "/api/training/start", "SKILL.md", SKILL.encode(), lora_alpha=value)
    assert_error(resp, 422, "invalid_parameter")


def test_target_modules_the_model_lacks_are_refused_at_submission(client: Any) -> None:
    resp = client.post("/api/training/start", json={"skill_path": "commit-messages", "target_modules": ["qq_proj"]})
    error = assert_error(resp, 422, "invalid_parameter")
    assert "qq_proj" in error["message"] and "q_proj" in error["message"]
    resp = upload(client, "/api/training/start", "SKILL.md", SKILL.encode(), target_modules="q_proj, nope")
    assert "nope" in assert_error(resp, 422, "invalid_parameter")["message"]
    assert client.get("/api/training").json()["count"] == 0
    ok = client.post(
        "/api/training/start", json={"skill_path": "commit-messages", "target_modules": ["q_proj", "self_attn.v_proj"]}
    )
    assert ok.status_code == 202, ok.text


def test_answers_never_name_absolute_server_paths(client: Any, settings: Settings, tmp_path: Path) -> None:
    secret = str(tmp_path)
    answers = [
        client.get("/api/skills"),
        client.post("/api/training/start", json={"skill_path": "no-such-skill"}),
        client.post("/api/training/start", json={"skill_path": "../../etc"}),
        client.post("/api/training/start", json={"skill_path": "/etc/passwd"}),
        client.post("/api/skills/preview", json={"skill_path": "commit-messages"}),
        upload(client, "/api/skills/preview", "skill.zip", b"PK\x03\x04broken"),
    ]
    for resp in answers:
        assert resp.status_code < 500, resp.text
        assert secret not in resp.text, resp.text
    assert answers[0].json()["root"] == "skills"
    assert answers[4].json()["skill"]["source"] == "commit-messages/SKILL.md"
