"""intake.py below HTTP: the idempotent submit (a retry, a lost race, a failure that leaves nothing behind),
the evaluation submit, and the preview of a path or an upload."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from skill_adapter import crud, intake
from skill_adapter.auth import Caller
from skill_adapter.core.config import Settings
from skill_adapter.core.db import init_db, session_scope
from skill_adapter.core.errors import InvalidParameterError, JobStateError, SkillNotFoundError
from skill_adapter.models import Evaluation, Job
from skill_adapter.schemas import TrainingParams, TrainingStartRequest

ANONYMOUS = Caller(name=None, admin=True)
ALICE = Caller(name="alice", admin=False)


@pytest.fixture
def db(settings: Settings) -> Settings:
    init_db(settings)
    return settings


def count(settings: Settings, model: Any) -> int:
    with session_scope(settings) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def submit(settings: Settings, enqueued: list[str], **kw: Any) -> intake.Submitted:
    kw.setdefault("params", TrainingStartRequest(skill_path="commit-messages/SKILL.md"))
    kw.setdefault("caller", ANONYMOUS)
    with session_scope(settings) as session:
        return intake.submit_training_job(session=session, settings=settings, enqueue=enqueued.append, **kw)


def test_the_key_is_checked_and_kept_per_owner() -> None:
    assert intake.idempotency_key(None, ALICE) is None
    assert intake.idempotency_key("retry-1", ANONYMOUS) == "retry-1"
    scoped = intake.idempotency_key("retry-1", ALICE)
    assert scoped is not None and scoped.startswith("alice:") and "retry-1" not in scoped
    assert scoped != intake.idempotency_key("retry-1", Caller(name="bob", admin=False))
    for bad in ("", "x" * 256, "has space", "caf\u00e9"):
        with pytest.raises(InvalidParameterError) as caught:
            intake.idempotency_key(bad, ALICE)
        assert caught.value.details["field"] == "Idempotency-Key"


def test_a_retry_with_the_key_gets_the_first_job_and_sends_nothing(db: Settings) -> None:
    enqueued: list[str] = []
    first = submit(db, enqueued, key="k1")
    again = submit(db, enqueued, key="k1")
    assert not first.replayed and again.replayed
    assert again.job.id == first.job.id and enqueued == [first.job.id]
    other = submit(db, enqueued, key="k2")
    assert other.job.id != first.job.id and count(db, Job) == 2


def test_the_loser_of_a_race_on_one_key_answers_with_the_winners_job(
    db: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    enqueued: list[str] = []
    skill = (db.skills_root / "commit-messages" / "SKILL.md").read_bytes()
    winner = submit(db, enqueued, key="burst")
    # The loser looked before the winner committed: its first look-up finds nothing, its insert then hits
    # the unique index, and the look-up after the rollback finds the winner's job.
    looked = crud.job_by_idempotency_key
    calls: list[str] = []

    def first_look_misses(*, session: Any, key: str) -> Job | None:
        calls.append(key)
        return None if len(calls) == 1 else looked(session=session, key=key)

    monkeypatch.setattr(crud, "job_by_idempotency_key", first_look_misses)
    loser = submit(db, enqueued, key="burst", params=TrainingParams(), upload=("SKILL.md", skill))
    assert loser.replayed and loser.job.id == winner.job.id and len(calls) == 2
    assert enqueued == [winner.job.id] and count(db, Job) == 1
    # The loser's stored upload is gone: only the winner's job folder (none: it named a path) remains.
    assert not db.checkpoint_dir.exists() or list(db.checkpoint_dir.iterdir()) == []


def test_a_failed_submission_leaves_no_row_no_upload_and_no_message(db: Settings) -> None:
    enqueued: list[str] = []
    skill = (db.skills_root / "commit-messages" / "SKILL.md").read_bytes()
    bad = TrainingParams(target_modules=["no_such_module"])  # refused after the upload is stored
    with pytest.raises(InvalidParameterError):
        submit(db, enqueued, params=bad, upload=("SKILL.md", skill), key="k")
    with pytest.raises(SkillNotFoundError):
        submit(db, enqueued, params=TrainingStartRequest(skill_path="nope/SKILL.md"))
    assert count(db, Job) == 0 and enqueued == []
    assert not db.checkpoint_dir.exists() or list(db.checkpoint_dir.iterdir()) == []
    # the key was not used up by the failure
    assert not submit(db, enqueued, key="k").replayed


def test_an_evaluation_of_an_unfinished_job_is_refused_and_sends_nothing(db: Settings) -> None:
    enqueued: list[str] = []
    job = submit(db, enqueued).job
    with session_scope(db) as session, pytest.raises(JobStateError):
        intake.submit_evaluation(
            session=session, settings=db, enqueue=enqueued.append, caller=ANONYMOUS, job_id=job.id, params={}
        )
    assert count(db, Evaluation) == 0 and enqueued == [job.id]


def test_preview_of_a_path_and_of_an_upload(db: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    by_path = intake.preview(settings=db, skill_path="commit-messages")
    assert by_path["skill"]["source"] == "commit-messages/SKILL.md" and by_path["examples"]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    skill = (db.skills_root / "commit-messages" / "SKILL.md").read_bytes()
    by_upload = intake.preview(settings=db, upload=("my.md", skill), seed=1)
    assert by_upload["skill"]["source"] == "my.md"
    assert by_upload["skill"]["name"] == by_path["skill"]["name"]
    assert list(scratch.iterdir()) == []  # the unpacked upload is removed
    with pytest.raises(InvalidParameterError):
        intake.preview(settings=db)
