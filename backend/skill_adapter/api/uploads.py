"""Request bodies for the routes that take a skill: JSON with ``skill_path``, or a multipart upload.

The body is read as a stream and refused with 413 as soon as it passes the cap for its kind, so a
client cannot make the server buffer more than the cap. The multipart form is then parsed from memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from skill_adapter.api.errors import describe_validation_errors
from skill_adapter.core.errors import InvalidJSONError, InvalidParameterError, PayloadTooLargeError

MAX_JSON_BODY = 1_000_000
MAX_SKILL_MD = 1_000_000
MAX_ARCHIVE = 20_000_000
MULTIPART_OVERHEAD = 64_000
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz")


@dataclass
class Upload:
    filename: str
    data: bytes

    @property
    def is_archive(self) -> bool:
        return self.filename.lower().endswith(ARCHIVE_SUFFIXES)


@dataclass
class SkillRequest:
    """What the client sent: validated fields, and either a ``skill_path`` (in ``fields``) or an upload."""

    fields: BaseModel
    upload: Upload | None


async def read_body(request: Request, *, cap: int) -> bytes:
    """The request body, refused with 413 once it passes ``cap`` bytes (declared or streamed)."""
    message = f"The request body is larger than the {cap // 1_000_000} MB limit"
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > cap:
        raise PayloadTooLargeError(message, limit_bytes=cap)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise PayloadTooLargeError(message, limit_bytes=cap)
        chunks.append(chunk)
    return b"".join(chunks)


def _validate(model: type[BaseModel], data: dict[str, Any], *, strict: bool) -> BaseModel:
    try:
        return model.model_validate(data, strict=strict)
    except ValidationError as exc:
        _, message, fields = describe_validation_errors([dict(err) for err in exc.errors()])
        raise InvalidParameterError(message, fields=fields) from None


MAX_JSON_DEPTH = 32


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects (iterative: no recursion on hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_json(raw: bytes, model: type[BaseModel]) -> BaseModel:
    try:
        # NaN and Infinity are not JSON (Python's parser takes them by default).
        data = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidJSONError(f"The request body nests deeper than {MAX_JSON_DEPTH} levels.") from None
    except ValueError:
        raise InvalidJSONError(
            "The request body is not valid JSON; send a JSON object with Content-Type: application/json, "
            "or a multipart form with the skill in the field 'file'"
        ) from None
    if not isinstance(data, dict):
        raise InvalidParameterError("The request body must be a JSON object.")
    if _depth(data) > MAX_JSON_DEPTH:
        raise InvalidJSONError(f"The request body nests deeper than {MAX_JSON_DEPTH} levels.")
    return _validate(model, data, strict=True)


async def _parse_multipart(request: Request, raw: bytes, upload_model: type[BaseModel]) -> SkillRequest:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    buffered = Request(request.scope, receive)
    try:
        form = await buffered.form(max_files=1, max_fields=64, max_part_size=64_000)
    except Exception as exc:  # python-multipart and starlette raise several types for a broken form
        raise InvalidParameterError(f"The multipart form could not be read: {exc}", field="file") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidParameterError(
                "A multipart request needs the skill in the field 'file' (a SKILL.md, .zip or .tar.gz)",
                field="file",
            )
        filename = upload.filename or "SKILL.md"
        data = await upload.read()
        fields: dict[str, Any] = {}
        for key, value in form.multi_items():
            if key == "file":
                continue
            if not isinstance(value, str):
                raise InvalidParameterError(f"{key} must be a plain form field, not a file", field=key)
            if key in fields:
                raise InvalidParameterError(f"{key} is given more than once", field=key)
            fields[key] = value
    finally:
        await form.close()
    modules = fields.get("target_modules")
    if modules is not None and modules != "all-linear":  # a form field lists module names with commas
        fields["target_modules"] = [name.strip() for name in modules.split(",") if name.strip()]
    trackers = fields.get("report_to")
    if trackers is not None and trackers != "none":  # a form field lists trackers with commas
        fields["report_to"] = [name.strip() for name in trackers.split(",") if name.strip()]
    upload_obj = Upload(filename=filename, data=data)
    cap = MAX_ARCHIVE if upload_obj.is_archive else MAX_SKILL_MD
    if len(data) > cap:
        kind = "a skill archive" if upload_obj.is_archive else "a SKILL.md"
        raise PayloadTooLargeError(
            f"The uploaded file is {len(data)} bytes; the limit for {kind} is {cap // 1_000_000} MB",
            limit_bytes=cap,
        )
    # Any other name is read as a SKILL.md: the content decides (a binary file gets skill_invalid).
    return SkillRequest(fields=_validate(upload_model, fields, strict=False), upload=upload_obj)


async def read_skill_request(
    request: Request, *, json_model: type[BaseModel], upload_model: type[BaseModel]
) -> SkillRequest:
    """Parse either body shape; every failure is a 4xx with a code."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        raw = await read_body(request, cap=MAX_ARCHIVE + MULTIPART_OVERHEAD)
        return await _parse_multipart(request, raw, upload_model)
    raw = await read_body(request, cap=MAX_JSON_BODY)
    return SkillRequest(fields=parse_json(raw, json_model), upload=None)


def upload_schema(fields: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI schema of the multipart form: the file plus the model's fields."""
    schema = fields.model_json_schema()
    properties: dict[str, Any] = {
        "file": {"type": "string", "format": "binary", "description": "SKILL.md, .zip or .tar.gz"}
    }
    for name, prop in schema.get("properties", {}).items():
        # A form field is a string that is present or absent: never null, never a JSON list.
        options = [option for option in prop.get("anyOf", [prop]) if option.get("type") != "null"]
        shown = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
        properties[name] = {**shown, **options[0]} if len(options) == 1 else {**shown, "anyOf": options}
    if "target_modules" in properties:
        properties["target_modules"] = {
            "type": "string",
            "pattern": r"^(all-linear|[A-Za-z0-9_.\-]+( *, *[A-Za-z0-9_.\-]+)*)$",
            "description": 'all-linear, or module names separated by commas ("q_proj,v_proj")',
        }
    return {"type": "object", "properties": properties, "required": ["file"], "additionalProperties": False}
