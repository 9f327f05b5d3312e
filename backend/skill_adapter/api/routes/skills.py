"""Skill preview: what a job would train on, before any GPU minute is spent."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, cast

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from skill_adapter import service
from skill_adapter.api.deps import SettingsDep
from skill_adapter.api.uploads import read_skill_request, upload_schema
from skill_adapter.schemas import PreviewRequest, PreviewUploadRequest

router = APIRouter(prefix="/api/skills", tags=["skills"])


@router.post(
    "/preview",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": PreviewRequest.model_json_schema()},
                "multipart/form-data": {"schema": upload_schema(PreviewUploadRequest)},
            },
        }
    },
)
async def preview(request: Request, settings: SettingsDep) -> Any:
    """Parse a skill and build its dataset without starting a job.

    Returns the parsed skill, its findings, ``dataset_stats`` (counts per generator and split, token
    lengths with the model's tokenizer, examples over ``max_seq_length``) and a sample of the examples.
    """
    body = await read_skill_request(request, json_model=PreviewRequest, upload_model=PreviewUploadRequest)
    fields = cast(PreviewUploadRequest, body.fields)
    options = {"seed": fields.seed, "max_seq_length": fields.max_seq_length}
    if body.upload is None:
        skill_path = cast(PreviewRequest, fields).skill_path
        skill_file = service.resolve_skill_path(skill_path, skills_root=settings.skills_root)
        return await run_in_threadpool(service.preview_skill, skill_file, settings=settings, **options)
    scratch = Path(tempfile.mkdtemp(prefix="skill-preview-"))
    try:
        upload = body.upload
        skill_file = await run_in_threadpool(service.store_upload, upload.filename, upload.data, scratch / "skill")
        result = await run_in_threadpool(service.preview_skill, skill_file, settings=settings, **options)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result["skill"]["source"] = upload.filename
    return result
