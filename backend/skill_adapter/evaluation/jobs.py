"""Evaluation as a queued job: accept (API), claim and run in a fresh process (worker), record the report.

Torch-free at import: the API uses ``create_evaluation``; the supervisor's child process runs
``run_claimed_evaluation``, which imports ``runner`` (torch) only then. ``runner`` never imports this module.
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from sqlalchemy.orm import Session

from skill_adapter import crud, queued
from skill_adapter.admission import admit_and_insert
from skill_adapter.auth import Caller
from skill_adapter.core.config import Settings
from skill_adapter.core.errors import EvaluationError, InvalidParameterError, JobStateError, SkillAdapterError
from skill_adapter.evaluation.adapters import check_adapter_folder
from skill_adapter.evaluation.cases import EvalCase, held_out_cases, load_evals_file, parse_evals, skill_evals_file
from skill_adapter.evaluation.report import to_markdown
from skill_adapter.models import Evaluation, Job
from skill_adapter.queued import EVALUATION
from skill_adapter.reporting import db_call

log = logging.getLogger(__name__)


def new_evaluation_id() -> str:
    return f"eval-{uuid.uuid4().hex[:12]}"


def create_evaluation(
    *,
    session: Session,
    job_id: str,
    params: dict[str, Any],
    settings: Settings,
    caller: Caller | None = None,
    after_commit: Callable[[Evaluation], object] | None = None,
) -> Evaluation:
    """Validate and insert a queued evaluation of a succeeded job (not yet committed).

    With a ``caller`` (the API), the job must be one it sees, and the evaluation passes admission control,
    which inserts and commits it (:mod:`skill_adapter.admission`) and then calls ``after_commit(evaluation)``
    (the enqueue); the evaluation belongs to the job's owner.
    """
    job = crud.get_job(session=session, job_id=job_id, caller=caller)
    if job.status != "succeeded" or not job.adapter_path:
        raise JobStateError(
            f"Job {job_id} is {job.status}; only a succeeded job has an adapter to evaluate", job_id=job_id
        )
    check_adapter_folder(Path(job.adapter_path))
    resolved = {
        "source": params.get("source") or ("evals" if params.get("evals") is not None else "held_out"),
        "max_new_tokens": params.get("max_new_tokens") or settings.eval_max_new_tokens,
        "limit": params.get("limit"),
        "max_context_tokens": params.get("max_context_tokens"),
        "evals": params.get("evals"),
    }
    if resolved["source"] == "held_out" and resolved["evals"] is not None:
        raise InvalidParameterError('"evals" cases need source "evals" (or no source)', field="source")
    _cases(resolved, job_skill_path=Path(job.skill_path), output_dir=Path(job.output_dir or ""))  # validate now
    evaluation_id, owner = new_evaluation_id(), job.owner
    if caller is None:
        return crud.create_evaluation(
            session=session, evaluation_id=evaluation_id, job_id=job_id, params=resolved, owner=owner
        )
    evaluation, _ = admit_and_insert(  # inserted and committed, batched with other submissions
        settings=settings,
        owner=owner,
        insert=lambda batch: crud.create_evaluation(
            session=batch, evaluation_id=evaluation_id, job_id=job_id, params=resolved, owner=owner, flush=False
        ),
        after_commit=after_commit,
    )
    return cast(Evaluation, evaluation)


def _cases(params: dict[str, Any], *, job_skill_path: Path, output_dir: Path) -> list[EvalCase]:
    if params["source"] == "evals":
        if params.get("evals") is not None:
            cases = parse_evals(params["evals"])
        else:
            cases = load_evals_file(skill_evals_file(job_skill_path))
    else:
        try:
            cases = held_out_cases(output_dir / "dataset")
        except FileNotFoundError:
            raise EvaluationError(
                f"The job's held-out split is missing ({output_dir / 'dataset' / 'held_out.jsonl'})",
                code="held_out_missing",
            ) from None
        if not cases:
            raise EvaluationError(
                'This job\'s dataset has no held-out examples; pass evaluation cases as "evals"',
                code="held_out_empty",
            )
    return cases[: params["limit"]] if params.get("limit") else cases


def execute_evaluation(evaluation_id: str, *, settings: Settings) -> str:
    """Claim an evaluation and run it in a child process under the supervisor; its final status or ``skipped``."""
    from skill_adapter.worker.supervisor import supervise

    return supervise(EVALUATION, evaluation_id, settings=settings)


def run_claimed_evaluation(evaluation_id: str, *, settings: Settings, worker_id: str) -> str:
    """Run an evaluation that ``worker_id`` claimed, in this process, and record its report or its error.

    The evaluation kind's child entry point (``queued.EVALUATION.child``). Every database call is retried while
    the database is unreachable; the end is recorded only while ``worker_id`` still holds the evaluation."""

    def read(*, session: Session) -> tuple[dict[str, Any], Job]:
        evaluation = crud.get_evaluation(session=session, evaluation_id=evaluation_id)
        job = crud.get_job(session=session, job_id=evaluation.job_id)
        session.expunge(job)
        return dict(evaluation.params), job

    params, job = db_call(settings, read)
    job_id, job_config, skill_name = job.id, dict(job.config), job.skill_name
    skill_path, adapter_path = Path(job.skill_path), Path(job.adapter_path or "")
    output_dir = Path(job.output_dir or settings.checkpoint_dir / job_id)

    def note(message: str, level: str = "INFO") -> None:
        db_call(settings, crud.add_log, job_id=job_id, message=f"evaluation {evaluation_id}: {message}", level=level)

    def progress(fraction: float) -> None:
        db_call(
            settings,
            queued.renew_lease,
            kind=EVALUATION,
            work_id=evaluation_id,
            worker_id=worker_id,
            progress=round(fraction * 0.99, 4),
        )

    folder = output_dir / "evaluations" / evaluation_id
    try:
        cases = _cases(params, job_skill_path=skill_path, output_dir=output_dir)
        note(f"{len(cases)} case(s) from {params['source']}, three arms, greedy, {params['max_new_tokens']} new tokens")
        from skill_adapter.evaluation.runner import evaluate

        report = evaluate(
            cases,
            config=job_config,
            adapter_path=adapter_path,
            skill_text=skill_path.read_text(encoding="utf-8-sig", errors="replace"),
            params=params,
            progress=progress,
        )
        report.update(
            evaluation_id=evaluation_id, job_id=job_id, skill_name=skill_name, seed=int(job_config.get("seed", 0))
        )
        folder.mkdir(parents=True, exist_ok=True)
        markdown = to_markdown(report)
        _write(folder / "report.json", json.dumps(report, indent=2, ensure_ascii=False))
        _write(folder / "report.md", markdown)
        _write(output_dir / "evaluation.md", markdown)  # the latest report, beside the adapter
        from skill_adapter.serving.card import write_model_card

        write_model_card(
            adapter_path,
            job_id=job_id,
            skill_name=skill_name,
            skill_path=skill_path,
            config=job_config,
            report=report,
        )
        status, error = "succeeded", None
    except SkillAdapterError as exc:
        status, report, error = "failed", None, exc.to_dict()
    except Exception as exc:
        status, report = "failed", None
        error = {"code": "evaluation_failed", "message": f"{type(exc).__name__}: {exc}"}
        note("failed:\n" + traceback.format_exc(), level="ERROR")
    end: dict[str, Any] = {"report": report, "report_path": str(folder / "report.md")} if report else {}
    db_call(
        settings,
        queued.finish,
        kind=EVALUATION,
        work_id=evaluation_id,
        status=status,
        error=error,
        worker_id=worker_id,
        **end,
    )
    note(status + (f": [{error['code']}] {error['message']}" if error else f"; report in {folder / 'report.md'}"))
    return status


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
