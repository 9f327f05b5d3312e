"""Health and the configured defaults (the dashboard's form starts from them)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from skill_adapter.api.deps import PROTECTED, SettingsDep, authenticate
from skill_adapter.auth import UnauthorizedError
from skill_adapter.core.params import configured_defaults, param_specs
from skill_adapter.health import health_report, model_section
from skill_adapter.public_paths import shower
from skill_adapter.schemas import PARAM_RANGES, HealthPublic, ServerConfig

router = APIRouter(prefix="/api", tags=["system"])


@router.get(
    "/health",
    response_model=HealthPublic,
    responses={503: {"model": HealthPublic, "description": "The database or the broker is down (same body)"}},
)
async def health(request: Request, settings: SettingsDep) -> JSONResponse:
    """The database, the broker and the live workers with their devices; 503 when the database or broker is down.

    Open to all. When the server has API keys, a caller without a valid one gets only the statuses (no
    URLs, paths, host names or workers): enough for a load balancer, nothing for a visitor.
    """
    embedded = getattr(request.app.state, "embedded_worker", None)
    report = await run_in_threadpool(health_report, settings, embedded_worker=embedded)
    code = 200 if report["status"] == "ok" else 503
    try:
        await authenticate(request)
        known = True
    except UnauthorizedError:
        known = False
    except Exception:  # the database is down: go by what the key ring last knew
        known = not request.app.state.keyring.required
    if not known:
        report = {
            "status": report["status"],
            "database": {"status": report["database"]["status"]},
            "broker": {"status": report["broker"]["status"]},
            "auth": "required",
        }
    return JSONResponse(report, status_code=code)


@router.get("/config", dependencies=PROTECTED, response_model=ServerConfig)
def config(settings: SettingsDep) -> dict[str, Any]:
    """Every training parameter: its default on this server, its allowed range, and how the dashboard's form
    shows it (core/params.py); and the base model."""
    shown = shower(settings)  # the model's folder as clients see paths: relative to its root (public_paths.py)
    return {
        "model": shown.text(settings.model_name_or_path),
        "base_model": shown.value(model_section(settings)),
        "model_max_length": settings.model_max_length(),
        "defaults": configured_defaults(settings),
        "ranges": PARAM_RANGES,
        "parameters": param_specs(settings),
    }
