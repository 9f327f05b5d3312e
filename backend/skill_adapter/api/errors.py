"""Every error leaves the API as ``{"error": {"code", "message", ...}}`` with a 4xx (or 503) status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from skill_adapter.core.errors import SkillAdapterError
from skill_adapter.schemas import PARAM_RANGES

log = logging.getLogger(__name__)


RETRY_AFTER_SECONDS = 5


def error_response(
    status: int, code: str, message: str, *, retry_after: int | None = None, **extra: Any
) -> JSONResponse:
    headers: dict[str, str] | None = None
    if status in (429, 503):
        headers = {"Retry-After": str(retry_after if retry_after is not None else RETRY_AFTER_SECONDS)}
    elif status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="skill-adapter"'}
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status, headers=headers)


def describe_validation_errors(errors: list[dict[str, Any]]) -> tuple[str, str, list[str]]:
    """(code, message, fields) for a list of pydantic errors; a body that is not JSON is its own code."""
    if any(err.get("type") == "json_invalid" for err in errors):
        return "invalid_json", "The request body is not valid JSON.", []
    parts, fields = [], []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or "body"
        if err.get("type") == "missing":
            parts.append(f"{field} is required")
        elif err.get("type") == "extra_forbidden":
            parts.append(f"{field} is not a known parameter")
        elif err.get("type") == "model_attributes_type":
            return "invalid_parameter", "The request body must be a JSON object.", []
        else:
            allowed = PARAM_RANGES.get(loc[0] if loc else "")
            got = err.get("input")
            shown = f" (got {got!r})" if isinstance(got, (str, int, float, bool)) or got is None else ""
            parts.append(f"{field} must be {allowed}{shown}" if allowed else f"{field}: {err.get('msg')}{shown}")
        fields.append(field)
    return "invalid_parameter", "; ".join(parts), fields


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SkillAdapterError)
    async def _domain(request: Request, exc: SkillAdapterError) -> JSONResponse:
        body = exc.to_dict()
        retry_after = body.get("retry_after_seconds")
        return error_response(
            exc.status_code,
            body.pop("code"),
            body.pop("message"),
            retry_after=retry_after if isinstance(retry_after, int) else None,
            **body,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        code, message, fields = describe_validation_errors(list(exc.errors()))
        status = 400 if code == "invalid_json" else 422
        if fields:
            return error_response(status, code, message, fields=fields)
        return error_response(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    async def _db_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            503,
            "database_unavailable",
            f"The database is unavailable or overloaded; nothing was changed. Retry in {RETRY_AFTER_SECONDS} s.",
        )

    # Unreachable, restarting or saturated (no pooled connection in time): the client should retry.
    app.add_exception_handler(DisconnectionError, _db_down)
    app.add_exception_handler(PoolTimeoutError, _db_down)

    @app.exception_handler(DBAPIError)
    async def _dbapi(request: Request, exc: DBAPIError) -> JSONResponse:
        from skill_adapter.reporting import is_transient_db_error

        if is_transient_db_error(exc):
            return await _db_down(request, exc)
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "An unexpected error occurred; see the server log.")
