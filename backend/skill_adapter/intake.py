"""What comes in through the API, below HTTP: a training job submitted idempotently, an evaluation of a
finished job, and a skill's preview.

Each function here is the whole of one request's work: the route reads the request, makes one call, and
turns the answer into a response (``api/routes/training.py``, ``evaluation.py``, ``skills.py``). The
building blocks (resolving a skill, storing an upload, creating the job row, enqueuing) live in
``service.py``.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from skill_adapter import crud, service
from skill_adapter.auth import Caller
from skill_adapter.core.config import Settings
from skill_adapter.core.errors import InvalidParameterError
from skill_adapter.evaluation.jobs import create_evaluation
from skill_adapter.models import Evaluation, Job
from skill_adapter.public_paths import shower
from skill_adapter.queued import EVALUATION, TRAINING
from skill_adapter.schemas import TrainingParams, TrainingStartRequest
from skill_adapter.worker.supervisor import Enqueue, enqueue_work

# An uploaded skill as the API received it: (file name, content). A SKILL.md, or a skill folder archive.
UploadedSkill = tuple[str, bytes]


def idempotency_key(header: str | None, caller: Caller | None = None) -> str | None:
    """The stored form of an ``Idempotency-Key`` header (1-255 visible ASCII characters), or None without one.

    Stored per owner: a key's name plus the header's SHA-256, so one key's retry never finds another's job.
    """
    if header is None:
        return None
    if not 1 <= len(header) <= 255 or not all("!" <= c <= "~" for c in header):
        raise InvalidParameterError(
            "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is a good choice)",
            field="Idempotency-Key",
        )
    if caller is not None and caller.owner is not None:
        return f"{caller.owner}:{hashlib.sha256(header.encode()).hexdigest()}"
    return header


@dataclass(frozen=True)
class Submitted:
    """A submission's job; ``replayed`` when an earlier submission with the same key made it (nothing new was
    stored nor enqueued)."""

    job: Job
    replayed: bool


def submit_training_job(
    *,
    session: Session,
    settings: Settings,
    enqueue: Enqueue,
    caller: Caller,
    params: TrainingParams,
    upload: UploadedSkill | None = None,
    key: str | None = None,
) -> Submitted:
    """Create, commit and enqueue a training job on ``params.skill_path`` (a :class:`TrainingStartRequest`) or
    on ``upload``, at most once per idempotency ``key``.

    A retry with a known key gets the first job back. Two submissions with one key racing each other both
    pass the first look-up; admission looks again under its lock and admits one, and the other answers with
    its job (the database's unique index is the last guard). A failed submission leaves nothing behind: no
    row, no stored upload, no message.
    """
    if key is not None and (earlier := crud.job_by_idempotency_key(session=session, key=key)) is not None:
        return Submitted(earlier, replayed=True)
    job_id = service.new_job_id()
    folder: Path | None = None
    try:
        if upload is None:
            skill_path = cast(TrainingStartRequest, params).skill_path
            skill_file = service.resolve_skill_path(skill_path, skills_root=settings.skills_root)
        else:
            folder = service.upload_dir(settings, job_id)
            skill_file = service.store_upload(upload[0], upload[1], folder)
        job = service.create_training_job(
            session=session,
            skill_file=skill_file,
            params=params,
            settings=settings,
            job_id=job_id,
            idempotency_key=key,
            caller=caller,
            after_commit=lambda made: enqueue_work(TRAINING, made.id, settings=settings, enqueue=enqueue, record=False),
        )
        session.commit()
    except BaseException as exc:
        session.rollback()
        if folder is not None:
            shutil.rmtree(folder.parent, ignore_errors=True)
        # The same key, sent concurrently, won the race: answer with its job.
        if (
            isinstance(exc, IntegrityError)
            and key is not None
            and (earlier := crud.job_by_idempotency_key(session=session, key=key)) is not None
        ):
            return Submitted(earlier, replayed=True)
        raise
    if job.id != job_id:  # the same key, sent concurrently, was admitted first: its job, nothing enqueued
        if folder is not None:
            shutil.rmtree(folder.parent, ignore_errors=True)
        return Submitted(job, replayed=True)
    return Submitted(job, replayed=False)  # admission enqueued it right after its commit


def submit_evaluation(
    *,
    session: Session,
    settings: Settings,
    enqueue: Enqueue,
    caller: Caller,
    job_id: str,
    params: dict[str, Any],
) -> Evaluation:
    """Create, commit and enqueue an evaluation of the succeeded job ``job_id`` (admission enqueues it right
    after its commit)."""
    try:
        evaluation = create_evaluation(
            session=session,
            job_id=job_id,
            params=params,
            settings=settings,
            caller=caller,
            after_commit=lambda made: enqueue_work(
                EVALUATION, made.id, settings=settings, enqueue=enqueue, record=False
            ),
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return evaluation


def preview(
    *,
    settings: Settings,
    skill_path: str | None = None,
    upload: UploadedSkill | None = None,
    seed: int | None = None,
    max_seq_length: int | None = None,
) -> dict[str, Any]:
    """:func:`service.preview_skill` of a skill under the skills root (``skill_path``) or of an upload, which
    is unpacked into a scratch folder removed afterwards. ``skill.source`` names it as the client did."""
    options: dict[str, Any] = {"seed": seed, "max_seq_length": max_seq_length}
    if upload is None:
        if skill_path is None:
            raise InvalidParameterError("skill_path or an uploaded file is required", field="skill_path")
        skill_file = service.resolve_skill_path(skill_path, skills_root=settings.skills_root)
        result = service.preview_skill(skill_file, settings=settings, **options)
        result["skill"]["source"] = skill_file.relative_to(settings.skills_root.resolve()).as_posix()
        return _public(result, settings)
    scratch = Path(tempfile.mkdtemp(prefix="skill-preview-"))
    try:
        skill_file = service.store_upload(upload[0], upload[1], scratch / "skill")
        result = service.preview_skill(skill_file, settings=settings, **options)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result["skill"]["source"] = upload[0]
    return _public(result, settings)


def _public(preview: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The preview with the model's folder and its tokenizer named as clients see server paths."""
    shown = shower(settings)
    tokens = preview["dataset_stats"]["tokens"]
    return {
        **preview,
        "model": shown.text(preview["model"]),
        "dataset_stats": {
            **preview["dataset_stats"],
            "tokens": {**tokens, "tokenizer": shown.path(tokens["tokenizer"])},
        },
    }
