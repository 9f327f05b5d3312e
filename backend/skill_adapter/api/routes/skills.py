"""Skills on the server, and the preview: what a job would train on, before any GPU minute is spent."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, cast

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from skill_adapter import service
from skill_adapter.api.deps import SettingsDep
from skill_adapter.api.responses import error_responses
from skill_adapter.api.uploads import read_skill_request, upload_schema
from skill_adapter.schemas import PreviewRequest, PreviewUploadRequest

router = APIRouter(prefix="/api/skills", tags=["skills"], responses=error_responses(400, 401, 403))

MAX_LISTED_SKILLS = 500
MAX_LIST_DEPTH = 4
_NAME_LINE = re.compile(r"^name:\s*['\"]?([^'\"\n]+?)['\"]?\s*$", re.MULTILINE)


def _frontmatter_name(path: Path) -> str:
    """The ``name`` of a SKILL.md's frontmatter, read cheaply from its first bytes ("" when there is none)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return ""
    if not head.startswith("---"):
        return ""
    frontmatter = head.split("\n---", 1)[0]
    match = _NAME_LINE.search(frontmatter)
    return match.group(1).strip() if match else ""


def list_skills(root: Path) -> list[dict[str, str]]:
    """SKILL.md files under ``root`` (paths relative to it), without following links out of it."""
    root = root.resolve()
    if not root.is_dir():
        return []
    found: list[dict[str, str]] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        depth = len(here.relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and depth < MAX_LIST_DEPTH)
        if "SKILL.md" in files:
            path = (here / "SKILL.md").resolve()
            if path.is_relative_to(root) and path.is_file():
                found.append({"path": path.relative_to(root).as_posix(), "name": _frontmatter_name(path)})
                if len(found) >= MAX_LISTED_SKILLS:
                    break
    return sorted(found, key=lambda entry: entry["path"])


@router.get("")
def get_skills(settings: SettingsDep) -> dict[str, Any]:
    """SKILL.md files under the skills root, as ``skill_path`` values for ``/api/training/start``."""
    data = list_skills(settings.skills_root)
    # The root's folder name only: an absolute server path is nobody's business but the operator's.
    return {"root": settings.skills_root.resolve().name, "data": data, "count": len(data)}


@router.post(
    "/preview",
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
    options: dict[str, Any] = {"seed": fields.seed, "max_seq_length": fields.max_seq_length}
    if body.upload is None:
        skill_path = cast(PreviewRequest, fields).skill_path
        skill_file = service.resolve_skill_path(skill_path, skills_root=settings.skills_root)
        result = await run_in_threadpool(service.preview_skill, skill_file, settings=settings, **options)
        result["skill"]["source"] = skill_file.relative_to(settings.skills_root.resolve()).as_posix()
        return result
    scratch = Path(tempfile.mkdtemp(prefix="skill-preview-"))
    try:
        upload = body.upload
        skill_file = await run_in_threadpool(service.store_upload, upload.filename, upload.data, scratch / "skill")
        result = await run_in_threadpool(service.preview_skill, skill_file, settings=settings, **options)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result["skill"]["source"] = upload.filename
    return result
