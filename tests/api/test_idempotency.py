"""Idempotency-Key on POST /api/training/start: a retried submission finds its job instead of adding one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.models import Job
from tests.helpers.api import GUIDE_BODY, assert_error


def rows(settings: Settings) -> int:
    with session_scope(settings) as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def test_a_retry_with_the_same_key_gets_the_same_job(client: Any, settings: Settings, enqueued: list[str]) -> None:
    headers = {"Idempotency-Key": "6f1c2f0e-retry-1"}
    first = client.post("/api/training/start", json=GUIDE_BODY, headers=headers)
    again = client.post("/api/training/start", json=GUIDE_BODY, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert rows(settings) == 1 and enqueued == [first.json()["job_id"]]

    other = client.post("/api/training/start", json=GUIDE_BODY, headers={"Idempotency-Key": "another"})
    plain = [client.post("/api/training/start", json=GUIDE_BODY) for _ in range(2)]
    assert len({other.json()["job_id"], *(p.json()["job_id"] for p in plain)} - {first.json()["job_id"]}) == 3
    assert rows(settings) == 4


def test_concurrent_submissions_with_one_key_make_one_job(client: Any, settings: Settings) -> None:
    def submit(_: int) -> Any:
        return client.post("/api/training/start", json=GUIDE_BODY, headers={"Idempotency-Key": "burst"})

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(submit, range(16)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["job_id"] for a in answers}) == 1
    assert rows(settings) == 1


def test_a_replayed_upload_stores_nothing_more(client: Any, settings: Settings) -> None:
    skill = (Path(settings.skills_root) / "commit-messages" / "SKILL.md").read_bytes()
    headers = {"Idempotency-Key": "upload-1"}
    first = client.post("/api/training/start", files={"file": ("SKILL.md", skill)}, headers=headers)
    again = client.post("/api/training/start", files={"file": ("SKILL.md", skill)}, headers=headers)
    assert first.json() == again.json()
    assert [p.name for p in settings.checkpoint_dir.resolve().iterdir()] == [first.json()["job_id"]]


def test_a_key_is_checked(client: Any, settings: Settings, enqueued: list[str]) -> None:
    for bad in ("x" * 256, "has space", "caf\u00e9".encode()):
        error = assert_error(
            client.post("/api/training/start", json=GUIDE_BODY, headers={"Idempotency-Key": bad}),
            422,
            "invalid_parameter",
        )
        assert error["field"] == "Idempotency-Key"
    assert rows(settings) == 0 and enqueued == []
