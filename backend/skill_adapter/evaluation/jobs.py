"""Evaluation as a queued job: accept (API), claim and run in a fresh process (worker), record the report.

Torch-free at import: the API uses ``create_evaluation`` and ``check_adapter_folder``; the worker's
child process imports ``runner`` (torch) only when it runs.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import traceback
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from skill_adapter import crud
from skill_adapter.admission import admit
from skill_adapter.auth import Caller
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.core.errors import EvaluationError, InvalidParameterError, JobStateError, SkillAdapterError
from skill_adapter.evaluation.cases import EvalCase, held_out_cases, load_evals_file, parse_evals, skill_evals_file
from skill_adapter.evaluation.report import ARM_TITLES, report_notes, to_markdown
from skill_adapter.models import Evaluation

log = logging.getLogger(__name__)

PICKLED_WEIGHTS = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
NOT_WEIGHTS = frozenset({"training_args.bin"})  # the Trainer's arguments, never loaded as weights


def new_evaluation_id() -> str:
    return f"eval-{uuid.uuid4().hex[:12]}"


def check_adapter_folder(path: Path) -> None:
    """Refuse an adapter folder that is missing, incomplete, or holds pickled (non-safetensors) weights."""
    if not (path / "adapter_config.json").is_file():
        raise EvaluationError(f"No adapter at {path} (adapter_config.json is missing)", code="adapter_missing")
    pickled = sorted(p.name for p in path.iterdir() if p.suffix in PICKLED_WEIGHTS and p.name not in NOT_WEIGHTS)
    if pickled or not (path / "adapter_model.safetensors").is_file():
        raise EvaluationError(
            f"The adapter in {path} is not stored as safetensors "
            f"({', '.join(pickled) or 'no adapter_model.safetensors'}); weights are only loaded from "
            "adapter_model.safetensors, never from pickle files",
            code="adapter_not_safetensors",
        )


def create_evaluation(
    *, session: Session, job_id: str, params: dict[str, Any], settings: Settings, caller: Caller | None = None
) -> Evaluation:
    """Validate and insert a queued evaluation of a succeeded job (not yet committed).

    With a ``caller`` (the API), the job must be one it sees, and the evaluation passes admission control;
    the evaluation belongs to the job's owner.
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
    if caller is not None:
        admit(session=session, owner=job.owner, settings=settings)
    return crud.create_evaluation(
        session=session, evaluation_id=new_evaluation_id(), job_id=job_id, params=resolved, owner=job.owner
    )


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
    """Claim an evaluation and run it in a child process; returns its final status or ``skipped``."""
    from skill_adapter.pipeline import heartbeat_interval

    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    with session_scope(settings) as session:
        if not crud.claim_evaluation(session=session, evaluation_id=evaluation_id, worker_id=worker_id):
            return "skipped"
    child = multiprocessing.get_context("spawn").Process(
        target=_child_main,
        args=(evaluation_id, settings.model_dump(mode="json"), os.getpid()),
        name=f"evaluate-{evaluation_id}",
    )
    child.start()
    while True:
        child.join(timeout=heartbeat_interval(settings))
        if not child.is_alive():
            break
        with session_scope(settings) as session:
            if not crud.heartbeat_evaluation(session=session, evaluation_id=evaluation_id, worker_id=worker_id):
                evaluation = crud.get_evaluation(session=session, evaluation_id=evaluation_id)
                if evaluation.status in ("running", "cancelled"):  # taken back by the reaper, or cancelled
                    child.kill()
                    child.join()
                    return "cancelled" if evaluation.status == "cancelled" else "lost"
    with session_scope(settings) as session:
        crud.finish_evaluation(
            session=session,
            evaluation_id=evaluation_id,
            status="failed",
            error={
                "code": "evaluation_crashed",
                "message": f"The evaluation process exited unexpectedly (exit code {child.exitcode}); "
                "if it ran out of memory, evaluate with a smaller limit or max_new_tokens",
            },
        )
        return crud.get_evaluation(session=session, evaluation_id=evaluation_id).status


def _child_main(evaluation_id: str, settings_data: dict[str, Any], parent_pid: int) -> None:
    from skill_adapter.pipeline import _die_with_parent
    from skill_adapter.quiet import silence_known_noise

    _die_with_parent(parent_pid)
    silence_known_noise()
    run_claimed_evaluation(evaluation_id, settings=Settings.model_validate(settings_data))


def run_claimed_evaluation(evaluation_id: str, *, settings: Settings) -> str:
    """Run a claimed evaluation in this process and record its report or its error."""
    with session_scope(settings) as session:
        evaluation = crud.get_evaluation(session=session, evaluation_id=evaluation_id)
        job = crud.get_job(session=session, job_id=evaluation.job_id)
        params, job_id, worker_id = dict(evaluation.params), job.id, evaluation.worker_id or ""
        job_config, skill_name = dict(job.config), job.skill_name
        skill_path, adapter_path = Path(job.skill_path), Path(job.adapter_path or "")
        output_dir = Path(job.output_dir or settings.checkpoint_dir / job_id)

    def note(message: str, level: str = "INFO") -> None:
        with session_scope(settings) as session:
            crud.add_log(session=session, job_id=job_id, message=f"evaluation {evaluation_id}: {message}", level=level)

    def progress(fraction: float) -> None:
        with session_scope(settings) as session:
            crud.heartbeat_evaluation(
                session=session, evaluation_id=evaluation_id, worker_id=worker_id, progress=round(fraction * 0.99, 4)
            )

    folder = output_dir / "evaluations" / evaluation_id
    try:
        cases = _cases(params, job_skill_path=skill_path, output_dir=output_dir)
        note(f"{len(cases)} case(s) from {params['source']}, three arms, greedy, {params['max_new_tokens']} new tokens")
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
    with session_scope(settings) as session:
        crud.finish_evaluation(
            session=session,
            evaluation_id=evaluation_id,
            status=status,
            report=report,
            report_path=str(folder / "report.md") if report else None,
            error=error,
        )
    note(status + (f": [{error['code']}] {error['message']}" if error else f"; report in {folder / 'report.md'}"))
    return status


def evaluate(
    cases: list[EvalCase],
    *,
    config: dict[str, Any],
    adapter_path: Path,
    skill_text: str,
    params: dict[str, Any],
    progress: Any = None,
) -> dict[str, Any]:
    """Load the model with its adapter, run the three arms, and return the report (without ids)."""
    from skill_adapter.evaluation.runner import (
        GENERATION_BATCH,
        Evaluator,
        load_for_evaluation,
        run_arms,
        summarize,
    )

    model, tokenizer = load_for_evaluation(config, adapter_path)
    evaluator = Evaluator(model, tokenizer, max_new_tokens=int(params["max_new_tokens"]))
    result = run_arms(
        evaluator,
        cases,
        skill_text=skill_text,
        max_context_tokens=params.get("max_context_tokens"),
        progress=progress,
    )
    report = {
        "source": params["source"],
        "limit": params.get("limit"),
        "num_examples": len(cases),
        "model": config["model"],
        "adapter_path": str(adapter_path),
        "generation": {
            "do_sample": False,
            "num_beams": 1,
            "max_new_tokens": int(params["max_new_tokens"]),
            "batch_size": GENERATION_BATCH,
        },
        "context_tokens": result["context_tokens"],
        "skill": result["skill"],
        "skill_truncated": result["skill"]["truncated"],
        "elapsed_seconds": result["elapsed_seconds"],
        "arm_titles": dict(ARM_TITLES),
        **summarize(cases, result),
    }
    report["notes"] = report_notes(report)
    return report


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
