"""Skills on the server, and the preview: what a job would train on, before any GPU minute is spent."""

from __future__ import annotations

from typing import Any, cast

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from skill_adapter import intake
from skill_adapter.api.deps import SettingsDep
from skill_adapter.api.responses import error_responses
from skill_adapter.api.uploads import read_skill_request, upload_schema
from skill_adapter.schemas import PreviewPublic, PreviewRequest, PreviewUploadRequest, SkillsPublic
from skill_adapter.skills import list_skills

router = APIRouter(prefix="/api/skills", tags=["skills"], responses=error_responses(400, 401, 403))


@router.get("", response_model=SkillsPublic)
def get_skills(settings: SettingsDep) -> dict[str, Any]:
    """SKILL.md files under the skills root, as ``skill_path`` values for ``/api/training/start``."""
    data = [{"path": entry.path, "name": entry.name} for entry in list_skills(settings.skills_root)]
    # The root's folder name only: an absolute server path is nobody's business but the operator's.
    return {"root": settings.skills_root.resolve().name, "data": data, "count": len(data)}


@router.post(
    "/preview",
    response_model=PreviewPublic,
    responses=error_responses(400, 403, 404, 413, 422),
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
    return await run_in_threadpool(
        intake.preview,
        settings=settings,
        skill_path=cast(PreviewRequest, fields).skill_path if body.upload is None else None,
        upload=(body.upload.filename, body.upload.data) if body.upload is not None else None,
        seed=fields.seed,
        max_seq_length=fields.max_seq_length,
    )
