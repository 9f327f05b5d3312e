"""Training jobs created as the API creates them, for tests that run the pipeline in-process."""

from __future__ import annotations

from pathlib import Path

from skill_adapter.core.config import Settings
from skill_adapter.core.db import init_db, session_scope
from skill_adapter.schemas import TrainingParams
from skill_adapter.service import create_training_job


def make_job(settings: Settings, skills_root: Path, **params: object) -> str:
    """A queued job on ``commit-messages`` with ``params``; its id."""
    init_db(settings)
    with session_scope(settings) as session:
        job = create_training_job(
            session=session,
            skill_file=skills_root / "commit-messages" / "SKILL.md",
            params=TrainingParams.model_validate(params),
            settings=settings,
        )
        return job.id
