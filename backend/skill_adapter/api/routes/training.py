"""Training jobs: start, list, status, logs, metrics, checkpoints, cancel."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Row
from starlette.concurrency import run_in_threadpool

from skill_adapter import crud, intake, service
from skill_adapter.api.deps import CallerDep, EngineDep, EnqueueDep, SessionDep, SettingsDep
from skill_adapter.api.responses import error_responses, model_response
from skill_adapter.api.uploads import read_skill_request, upload_schema
from skill_adapter.models import Job
from skill_adapter.public_paths import PathShower, shower
from skill_adapter.queued import TRAINING, request_cancel
from skill_adapter.schemas import (
    CheckpointPublic,
    CheckpointsPublic,
    DatasetExamplePublic,
    DatasetPublic,
    ErrorBody,
    EventsPage,
    JobCreated,
    JobEventPublic,
    JobsPublic,
    JobStatus,
    JobSummary,
    LogLinePublic,
    LogsPage,
    MetricPointPublic,
    MetricsPage,
    TrainingParams,
    TrainingStartRequest,
)

router = APIRouter(prefix="/api/training", tags=["training"], responses=error_responses(400, 401, 403, 422, 503))

JobId = Annotated[str, "job id"]


def _job_link(path: str, method: str) -> dict[str, Any]:
    pointer = path.replace("~", "~0").replace("/", "~1")
    return {"operationRef": f"#/paths/{pointer}/{method}", "parameters": {"job_id": "$response.body#/job_id"}}


# OpenAPI links from a new job to what a client does next (clients and schemathesis' stateful tests follow them).
JOB_LINKS = {
    "GetStatus": _job_link("/api/training/{job_id}/status", "get"),
    "GetLogs": _job_link("/api/training/{job_id}/logs", "get"),
    "GetMetrics": _job_link("/api/training/{job_id}/metrics", "get"),
    "Evaluate": _job_link("/api/training/{job_id}/evaluate", "post"),
    "Cancel": _job_link("/api/training/{job_id}/cancel", "post"),
}
# Cursors and offsets are 64-bit signed integers in every database we support.
MAX_CURSOR = 2**63 - 1


def _error(job: Job | Row[Any], shown: PathShower) -> ErrorBody | None:
    if job.status != "failed" and not job.error_code:
        return None
    return ErrorBody(code=job.error_code or "training_failed", message=shown.text(job.error_message or ""))


def job_status(job: Job | Row[Any], shown: PathShower) -> JobStatus:
    """The status answer, from the ORM object or a row of the jobs table (same names); server paths in it are
    named relative to their roots (see :mod:`skill_adapter.public_paths`)."""
    return JobStatus(
        job_id=job.id,
        status=job.status,
        progress=job.progress,
        current_epoch=job.current_epoch,
        total_epochs=job.total_epochs,
        loss=job.loss,
        started_at=job.started_at,
        created_at=job.created_at,
        finished_at=job.finished_at,
        step=job.step,
        total_steps=job.total_steps,
        learning_rate=job.learning_rate,
        eval_loss=job.eval_loss,
        eta_seconds=job.eta_seconds,
        attempts=job.attempts,
        skill_name=job.skill_name,
        adapter_path=shown.path(job.adapter_path),
        error=_error(job, shown),
        config=shown.value(job.config),
    )


@router.post(
    "/start",
    status_code=202,
    response_model=JobCreated,
    responses={**error_responses(400, 403, 404, 413, 429), 202: {"links": JOB_LINKS}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": TrainingStartRequest.model_json_schema()},
                "multipart/form-data": {"schema": upload_schema(TrainingParams)},
            },
        }
    },
)
async def start_training(
    request: Request, session: SessionDep, settings: SettingsDep, enqueue: EnqueueDep, caller: CallerDep
) -> Any:
    """Accept a training job; the answer comes before training starts.

    JSON names a SKILL.md under the skills root (``skill_path``); multipart uploads one in the field
    ``file`` (a SKILL.md, or a skill folder as .zip / .tar.gz), with hyper-parameters as form fields.
    """
    key = intake.idempotency_key(request.headers.get("idempotency-key"), caller)
    body = await read_skill_request(request, json_model=TrainingStartRequest, upload_model=TrainingParams)
    upload = (body.upload.filename, body.upload.data) if body.upload is not None else None
    # Parsing, the commit and the enqueue block: off the event loop, so /status stays quick meanwhile.
    submitted = await run_in_threadpool(
        intake.submit_training_job,
        session=session,
        settings=settings,
        enqueue=enqueue,
        caller=caller,
        params=cast(TrainingParams, body.fields),
        upload=upload,
        key=key,
    )
    job = submitted.job
    if submitted.replayed:  # the answer the first submission with this key got
        replay = JobCreated(job_id=job.id, status="queued", created_at=job.created_at)
        return JSONResponse(replay.model_dump(mode="json"), status_code=202, headers={"Idempotent-Replayed": "true"})
    return JobCreated(job_id=job.id, status=job.status, created_at=job.created_at)


@router.get("", response_model=JobsPublic)
def list_jobs(
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_CURSOR)] = 0,
) -> Any:
    """Jobs, newest first."""
    jobs, count = crud.list_jobs(session=session, limit=limit, offset=offset, caller=caller)
    shown = shower(settings)
    data = [
        JobSummary(
            job_id=j.id,
            status=j.status,
            skill_name=j.skill_name,
            progress=j.progress,
            current_epoch=j.current_epoch,
            total_epochs=j.total_epochs,
            loss=j.loss,
            created_at=j.created_at,
            started_at=j.started_at,
            finished_at=j.finished_at,
            error=_error(j, shown),
        )
        for j in jobs
    ]
    return model_response(JobsPublic(data=data, count=count))


@router.get("/{job_id}/status", response_model=JobStatus, responses=error_responses(404))
def get_status(job_id: JobId, engine: EngineDep, settings: SettingsDep, caller: CallerDep) -> Any:
    # A plain connection, opened and closed on this thread: the lightest read (see crud.job_row).
    with engine.connect() as connection:
        row = crud.job_row(connection=connection, job_id=job_id, caller=caller)
    return model_response(job_status(row, shower(settings)))


@router.get("/{job_id}/logs", response_model=LogsPage, responses=error_responses(404))
def get_logs(
    job_id: JobId,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    after: Annotated[int, Query(ge=0, le=MAX_CURSOR, description="the `next` cursor of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Any:
    """Log lines after the cursor, oldest first; pass ``next`` back as ``after`` to get only new lines."""
    crud.get_job(session=session, job_id=job_id, caller=caller)
    lines = crud.read_logs(session=session, job_id=job_id, after=after, limit=limit)
    shown = shower(settings)
    page = LogsPage(
        lines=[LogLinePublic(id=ln.id, ts=ln.ts, level=ln.level, message=shown.text(ln.message)) for ln in lines],
        next=lines[-1].id if lines else after,
    )
    return model_response(page)


@router.get("/{job_id}/metrics", response_model=MetricsPage, responses=error_responses(404))
def get_metrics(
    job_id: JobId,
    session: SessionDep,
    caller: CallerDep,
    after: Annotated[int, Query(ge=0, le=MAX_CURSOR)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> Any:
    """Metric points (loss, learning rate, eval loss, tokens/s, ETA, GPU) after the cursor."""
    crud.get_job(session=session, job_id=job_id, caller=caller)
    points = crud.read_metrics(session=session, job_id=job_id, after=after, limit=limit)
    page = MetricsPage(
        points=[MetricPointPublic.model_validate(p, from_attributes=True) for p in points],
        next=points[-1].id if points else after,
    )
    return model_response(page)


@router.get("/{job_id}/events", response_model=EventsPage, responses=error_responses(404))
def get_events(
    job_id: JobId,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    after: Annotated[int, Query(ge=0, le=MAX_CURSOR, description="the `next` cursor of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """The job's life as typed events (created, queued, started, ..., succeeded | failed | cancelled), oldest
    first; pass ``next`` back as ``after`` to get only new ones."""
    crud.get_job(session=session, job_id=job_id, caller=caller)  # 404 job_not_found for another key
    events = crud.read_events(session=session, job_id=job_id, after=after, limit=limit)
    shown = shower(settings)
    page = EventsPage(
        data=[
            JobEventPublic(
                id=e.id,
                time=e.time,
                level=e.level,
                type=e.type,
                message=shown.text(e.message),
                data=shown.value(e.data or {}),
            )
            for e in events
        ],
        next=events[-1].id if events else after,
    )
    return model_response(page)


@router.get("/{job_id}/checkpoints", response_model=CheckpointsPublic, responses=error_responses(404))
def get_checkpoints(job_id: JobId, session: SessionDep, settings: SettingsDep, caller: CallerDep) -> Any:
    """The job's saved checkpoints and its final adapter."""
    crud.get_job(session=session, job_id=job_id, caller=caller)
    rows = crud.list_checkpoints(session=session, job_id=job_id)
    data = [
        CheckpointPublic(
            step=row.step,
            name=Path(row.path).name,
            path=service.shown_path(row.path, root=settings.checkpoint_dir),
            complete=(Path(row.path) / "COMPLETE").is_file(),
            metrics=row.metrics or {},
        )
        for row in rows
    ]
    return model_response(CheckpointsPublic(data=data, count=len(data)))


@router.get("/{job_id}/dataset", response_model=DatasetPublic, responses=error_responses(404))
def get_dataset(
    job_id: JobId,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> Any:
    """The examples the job trains on (empty until its dataset is written), with their provenance."""
    from skill_adapter.datasets.distill import read_records

    job = crud.get_job(session=session, job_id=job_id, caller=caller)
    folder = Path(job.output_dir or settings.checkpoint_dir.resolve() / job_id) / "dataset"
    data = read_records(folder, limit=limit)
    return model_response(
        DatasetPublic(
            job_id=job_id,
            recipe=str(job.config.get("recipe", "template")),
            summary=data["summary"],
            examples=[DatasetExamplePublic(**row) for row in data["examples"]],
            count=data["count"],
        )
    )


@router.post("/{job_id}/cancel", status_code=202, response_model=JobStatus, responses=error_responses(404, 409))
def cancel_job(job_id: JobId, session: SessionDep, settings: SettingsDep, caller: CallerDep) -> Any:
    """Cancel a queued job at once or stop a running one at its next step; 409 for a finished job."""
    job = crud.get_job(session=session, job_id=job_id, caller=caller)
    request_cancel(session=session, kind=TRAINING, work=job)
    session.commit()
    return job_status(job, shower(settings))
