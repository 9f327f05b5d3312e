"""Post-training evaluation: start one (a queued job of its own), read the latest and past reports."""

from __future__ import annotations

from typing import Any, cast

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from skill_adapter import crud, intake
from skill_adapter.api.deps import CallerDep, EnqueueDep, SessionDep, SettingsDep
from skill_adapter.api.responses import error_responses
from skill_adapter.api.uploads import parse_json, read_body
from skill_adapter.core.errors import EvaluationNotFoundError
from skill_adapter.models import Evaluation
from skill_adapter.public_paths import PathShower, shower
from skill_adapter.queued import EVALUATION, request_cancel
from skill_adapter.schemas import (
    ErrorBody,
    EvaluateRequest,
    EvaluationCreated,
    EvaluationPublic,
    EvaluationsPublic,
    EvaluationSummary,
)

router = APIRouter(prefix="/api/training", tags=["evaluation"], responses=error_responses(400, 401, 403, 404, 422, 503))

MAX_EVALUATE_BODY = 5_000_000


def _summary(evaluation: Evaluation, shown: PathShower) -> dict[str, Any]:
    params = {k: v for k, v in evaluation.params.items() if k != "evals"}
    if evaluation.params.get("evals") is not None:
        params["evals_cases"] = len(evaluation.params["evals"].get("evals", []))
    error = None
    if evaluation.status == "failed" or evaluation.error_code:
        error = ErrorBody(
            code=evaluation.error_code or "evaluation_failed", message=shown.text(evaluation.error_message or "")
        )
    return {
        "evaluation_id": evaluation.id,
        "job_id": evaluation.job_id,
        "status": evaluation.status,
        "progress": evaluation.progress,
        "params": params,
        "created_at": evaluation.created_at,
        "started_at": evaluation.started_at,
        "finished_at": evaluation.finished_at,
        "report_path": shown.path(evaluation.report_path),
        "error": error,
    }


@router.post(
    "/{job_id}/evaluate",
    status_code=202,
    response_model=EvaluationCreated,
    responses=error_responses(400, 409, 413, 429),
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": EvaluateRequest.model_json_schema()}},
        }
    },
)
async def evaluate(
    job_id: str, request: Request, session: SessionDep, settings: SettingsDep, enqueue: EnqueueDep, caller: CallerDep
) -> Any:
    """Queue an evaluation of a succeeded job: base, base + SKILL.md, and adapter on the same cases.

    404 for an unknown job, 409 for a job that has not succeeded, 422 for an adapter that is not
    safetensors or malformed ``evals``.
    """
    raw = await read_body(request, cap=MAX_EVALUATE_BODY)
    body = cast(EvaluateRequest, parse_json(raw, EvaluateRequest)) if raw.strip() else EvaluateRequest()
    # The checks, the commit and the enqueue block: off the event loop, as for training jobs.
    evaluation = await run_in_threadpool(
        intake.submit_evaluation,
        session=session,
        settings=settings,
        enqueue=enqueue,
        caller=caller,
        job_id=job_id,
        params=body.model_dump(exclude_none=True),
    )
    return EvaluationCreated(
        evaluation_id=evaluation.id, job_id=job_id, status=evaluation.status, created_at=evaluation.created_at
    )


@router.get("/{job_id}/evaluation", response_model=EvaluationPublic)
def latest_evaluation(job_id: str, session: SessionDep, settings: SettingsDep, caller: CallerDep) -> Any:
    """The latest evaluation with its report (``report`` is null until ``status`` is ``succeeded``)."""
    crud.get_job(session=session, job_id=job_id, caller=caller)
    evaluations = crud.list_evaluations(session=session, job_id=job_id)
    if not evaluations:
        raise EvaluationNotFoundError(
            f"Job {job_id} has no evaluation yet; start one with POST /api/training/{job_id}/evaluate"
        )
    shown = shower(settings)
    return EvaluationPublic(**_summary(evaluations[0], shown), report=shown.value(evaluations[0].report))


@router.get("/{job_id}/evaluations", response_model=EvaluationsPublic)
def list_evaluations(job_id: str, session: SessionDep, settings: SettingsDep, caller: CallerDep) -> Any:
    """Every evaluation of the job, newest first, without the reports."""
    crud.get_job(session=session, job_id=job_id, caller=caller)
    evaluations = crud.list_evaluations(session=session, job_id=job_id)
    return EvaluationsPublic(
        data=[EvaluationSummary(**_summary(e, shower(settings))) for e in evaluations], count=len(evaluations)
    )


@router.get("/{job_id}/evaluations/{evaluation_id}", response_model=EvaluationPublic)
def get_evaluation(
    job_id: str, evaluation_id: str, session: SessionDep, settings: SettingsDep, caller: CallerDep
) -> Any:
    """One past evaluation with its report."""
    crud.get_job(session=session, job_id=job_id, caller=caller)
    evaluation = crud.get_evaluation(session=session, evaluation_id=evaluation_id, job_id=job_id, caller=caller)
    shown = shower(settings)
    return EvaluationPublic(**_summary(evaluation, shown), report=shown.value(evaluation.report))


@router.post("/{job_id}/evaluations/{evaluation_id}/cancel", status_code=202, response_model=EvaluationSummary)
def cancel_evaluation(
    job_id: str, evaluation_id: str, session: SessionDep, settings: SettingsDep, caller: CallerDep
) -> Any:
    """Cancel a queued or running evaluation (a running one's process is stopped); 409 for a finished one."""
    crud.get_job(session=session, job_id=job_id, caller=caller)
    evaluation = crud.get_evaluation(session=session, evaluation_id=evaluation_id, job_id=job_id, caller=caller)
    request_cancel(session=session, kind=EVALUATION, work=evaluation)
    session.commit()
    return EvaluationSummary(**_summary(evaluation, shower(settings)))
