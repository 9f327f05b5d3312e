"""run a job: claim -> parse -> build -> train -> record, in a fresh process per job.

``execute_job`` runs in the worker (or the CLI): it claims the job with a compare-and-set, trains in a
spawned child process (CUDA does not survive fork, and a process per job returns GPU memory and makes a
cancel certain), keeps the heartbeat and maps the child's end to the job status.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from skill_adapter import crud
from skill_adapter.core.budget import work_budget
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.core.errors import SkillAdapterError
from skill_adapter.quiet import silence_known_noise
from skill_adapter.reporting import DatabaseLogHandler, JobReporter, db_call, retry_db

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0


def heartbeat_interval(settings: Settings) -> float:
    """How often a worker renews its lease: every 5 s, and at least four times per lease."""
    return max(0.2, min(HEARTBEAT_SECONDS, settings.job_lease_seconds / 4))


CANCEL_GRACE_SECONDS = 10.0
TRAINING_NICENESS = 10


def execute_job(job_id: str, *, settings: Settings) -> str:
    """Claim ``job_id`` and train it in a child process; returns the job's final status or ``skipped``."""
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    if not db_call(settings, crud.claim_job, job_id=job_id, worker_id=worker_id):
        log.info("job %s is not queued any more; nothing to do", job_id)
        return "skipped"
    reporter = JobReporter(settings, job_id)
    reporter.log(f"claimed by worker {worker_id}")

    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(
        target=_child_main,
        args=(job_id, settings.model_dump(mode="json"), os.getpid(), worker_id),
        name=f"train-{job_id}",
    )
    child.start()
    try:
        cancel_seen_at: float | None = None
        while True:
            child.join(timeout=heartbeat_interval(settings))
            if not child.is_alive():
                break
            still_ours = db_call(settings, crud.heartbeat, job_id=job_id, worker_id=worker_id)
            if not still_ours and _finished_by(settings, job_id, worker_id):
                child.join(timeout=30)  # the child recorded the outcome and is exiting
                if child.is_alive():
                    child.kill()
                    child.join()
                break
            if not still_ours:  # the reaper gave the job to another worker: stop this run for sure
                log.warning("job %s was taken back from this worker; stopping its training process", job_id)
                child.kill()
                child.join()
                return "lost"
            if reporter.cancel_requested():
                cancel_seen_at = cancel_seen_at or time.monotonic()
                if time.monotonic() - cancel_seen_at > CANCEL_GRACE_SECONDS:
                    reporter.log("training did not stop in time after cancel; killing it", level="WARNING")
                    child.kill()
                    child.join()
                    break
    except BaseException:  # the database stayed away past the retries, or the task is being torn down:
        if child.is_alive():  # never leave a trainer behind that another worker's run would collide with
            child.kill()
            child.join()
        raise

    status = retry_db(
        lambda: _record_end(settings, job_id, child.exitcode, worker_id=worker_id), what="recording the job's end"
    )
    if status == "queued":  # the training process died and the job has attempts left: send it again
        from skill_adapter.service import enqueue_job
        from skill_adapter.worker.queue import sender

        enqueue_job(job_id, settings=settings, enqueue=sender(settings))
    return status


def describe_exit(exitcode: int | None) -> str:
    """How a training process ended, in words: a signal's name and what usually sends it."""
    if exitcode is None:
        return "did not report an exit code"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        cause = " (the out-of-memory killer, or a kill -9)" if -exitcode == signal.SIGKILL else ""
        return f"was killed by {name}{cause}"
    return f"exited with code {exitcode}"


def _record_end(settings: Settings, job_id: str, exitcode: int | None, *, worker_id: str | None = None) -> str:
    """The job's status once its training process has ended.

    A process that died without recording an outcome (killed, out of memory) is retried from the newest
    complete checkpoint while attempts remain; after the last attempt the job fails with the cause.
    """
    from skill_adapter.training.checkpoints import latest_complete_checkpoint

    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
        if job.status == "running":
            how = describe_exit(exitcode)
            if job.cancel_requested:
                crud.finish_job(session=session, job_id=job_id, status="cancelled")
            elif job.attempts < settings.max_attempts and crud.requeue_job(
                session=session, job_id=job_id, worker_id=worker_id if worker_id is not None else job.worker_id
            ):
                resume = latest_complete_checkpoint((settings.checkpoint_dir / job_id).resolve())
                where = f"from {resume.name}" if resume is not None else "from the start (no complete checkpoint)"
                message = (
                    f"The training process {how} at step {job.step}; retrying {where} "
                    f"(attempt {job.attempts + 1} of {settings.max_attempts})."
                )
                crud.add_log(session=session, job_id=job_id, level="WARNING", message=message)
                crud.update_job(session=session, job_id=job_id, error_code="worker_crashed", error_message=message)
            else:
                crud.add_log(session=session, job_id=job_id, level="ERROR", message=f"the training process {how}")
                crud.finish_job(
                    session=session,
                    job_id=job_id,
                    status="failed",
                    error={
                        "code": "worker_crashed",
                        "message": f"The training process {how}, on attempt {job.attempts} of "
                        f"{settings.max_attempts}. See the job's logs; if it ran out of memory, reduce batch_size "
                        "or max_seq_length or use QLoRA.",
                    },
                )
        session.flush()
        session.refresh(job)
        return job.status


def _finished_by(settings: Settings, job_id: str, worker_id: str) -> bool:
    """Whether this worker's own training process already moved the job to a terminal status."""
    job = db_call(settings, crud.get_job, job_id=job_id)
    return job.worker_id == worker_id and job.is_terminal


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this process when its parent dies (even by kill -9)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: the parent's heartbeat loop still notices, the reaper still recovers
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _child_main(job_id: str, settings_data: dict[str, Any], parent_pid: int, worker_id: str) -> None:
    _die_with_parent(parent_pid)
    silence_known_noise()
    # Training takes whatever CPU is free; the API and the worker's heartbeat on the same machine go first.
    with contextlib.suppress(OSError):
        os.nice(TRAINING_NICENESS)
    settings = Settings.model_validate(settings_data)
    run_claimed_job(job_id, settings=settings, worker_id=worker_id)


def run_claimed_job(job_id: str, *, settings: Settings, worker_id: str | None = None) -> str:
    """Train a job that this process's parent has claimed, and record how it ended."""
    output_dir = (settings.checkpoint_dir / job_id).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    reporter = JobReporter(settings, job_id, log_file=output_dir / "train.log")
    handlers = _attach_log_handlers(reporter)
    try:
        status, error, adapter_path = _train(job_id, settings=settings, reporter=reporter, output_dir=output_dir)
    except SkillAdapterError as exc:
        status, error, adapter_path = "failed", exc.to_dict(), None
        reporter.log(f"{exc.code}: {exc.message}", level="ERROR")
    except Exception as exc:
        status, adapter_path = "failed", None
        error = {"code": "training_failed", "message": f"{type(exc).__name__}: {exc}"}
        reporter.log("training failed:\n" + traceback.format_exc(), level="ERROR")
    finally:
        _detach_log_handlers(handlers)
    db_call(
        settings,
        crud.finish_job,
        job_id=job_id,
        status=status,
        error=error,
        adapter_path=adapter_path,
        worker_id=worker_id,
    )
    reporter.log(f"job {status}" + (f": {error['message']}" if error else ""))
    return status


def _train(
    job_id: str, *, settings: Settings, reporter: JobReporter, output_dir: Path
) -> tuple[str, dict[str, Any] | None, str | None]:
    from skill_adapter.datasets.builder import build_dataset, write_jsonl
    from skill_adapter.datasets.stats import dataset_stats, find_tokenizer_json
    from skill_adapter.skills.folder import load_skill_path

    job = db_call(settings, crud.get_job, job_id=job_id)
    config = dict(job.config)
    skill_path = Path(job.skill_path)

    reporter.log(f"parsing {skill_path}")
    with work_budget(what="parsing the skill and building its dataset"):
        skill = load_skill_path(skill_path)
        dataset = build_dataset(skill, seed=int(config["seed"]))
    for finding in skill.findings:
        reporter.log(f"skill finding {finding.code} (line {finding.line}): {finding.message}", level="WARNING")
    config.setdefault("keep_checkpoints", settings.keep_checkpoints)
    if config.get("recipe", "template") == "distill":
        return _train_distilled(
            config,
            job_id=job_id,
            skill=skill,
            skill_file=skill_path,
            settings=settings,
            reporter=reporter,
            output_dir=output_dir,
        )
    write_jsonl(dataset, output_dir / "dataset")
    stats = dataset_stats(
        dataset,
        tokenizer_json=find_tokenizer_json(config["model"]),
        max_seq_length=int(config["max_seq_length"]),
    )
    reporter.progress(dataset_stats=stats, output_dir=str(output_dir))
    reporter.log(
        f"dataset: {len(dataset.train)} train and {len(dataset.held_out)} held-out examples "
        f"(saved in {output_dir / 'dataset'})"
    )
    reporter.event(
        "dataset_built",
        f"Dataset built: {len(dataset.train)} train and {len(dataset.held_out)} held-out examples",
        data={"train_examples": len(dataset.train), "held_out_examples": len(dataset.held_out), "stats": stats},
    )

    reporter.log("importing torch, transformers, PEFT and TRL")
    from skill_adapter.training.trainer import train_adapter

    config.setdefault("keep_checkpoints", settings.keep_checkpoints)
    result = train_adapter(
        config=config, dataset=dataset, output_dir=output_dir, reporter=reporter, job_id=job_id, skill_name=skill.name
    )
    if result.cancelled:
        return "cancelled", None, None
    from skill_adapter.serving.card import write_model_card

    write_model_card(
        Path(str(result.adapter_path)), job_id=job_id, skill_name=job.skill_name, skill_path=skill_path, config=config
    )
    return "succeeded", None, str(result.adapter_path)


def _train_distilled(
    config: dict[str, Any],
    *,
    job_id: str,
    skill: Any,
    skill_file: Path,
    settings: Settings,
    reporter: JobReporter,
    output_dir: Path,
) -> tuple[str, dict[str, Any] | None, str | None]:
    """The distill recipe: the prompted base model writes the dataset, then the adapter learns it."""
    from skill_adapter.datasets.distill import read_dataset, write_dataset
    from skill_adapter.datasets.stats import dataset_stats, find_tokenizer_json

    reporter.log("importing torch, transformers, PEFT and TRL")
    from skill_adapter.training.teacher import GenerationCancelled, build_distill_dataset
    from skill_adapter.training.trainer import load_for_training, train_adapter

    loaded = load_for_training(config, reporter)
    hardware, tokenizer, base = loaded
    if hardware.cuda and config["adapter_type"] != "qlora":  # QLoRA loads onto the GPU; LoRA waits for Trainer
        base.to("cuda")
    dataset_dir = output_dir / "dataset"
    dataset = read_dataset(dataset_dir)  # a retried or resumed attempt trains on what the first one wrote
    if dataset is not None:
        reporter.log(f"teacher: reusing this job's dataset in {dataset_dir}")
    else:
        reporter.log("teacher: the base model with the SKILL.md as system prompt writes the dataset")
        try:
            dataset = build_distill_dataset(
                model=base,
                tokenizer=tokenizer,
                skill=skill,
                skill_file=skill_file,
                config=config,
                cache_dir=settings.data_dir.resolve() / "distill-cache",
                note=reporter.log,
                cancelled=reporter.cancel_requested,
            )
        except GenerationCancelled:
            reporter.log("cancelled while the teacher was generating")
            return "cancelled", None, None
        write_dataset(dataset, dataset_dir)
    stats = dataset_stats(
        dataset, tokenizer_json=find_tokenizer_json(config["model"]), max_seq_length=int(config["max_seq_length"])
    )
    stats["distill"] = dataset.summary()
    reporter.progress(dataset_stats=stats, output_dir=str(output_dir))
    teacher = dataset.teacher
    reporter.log(
        f"dataset: {len(dataset.train)} train and {len(dataset.held_out)} held-out teacher answers "
        f"(dropped: {dataset.dropped or 'none'}; saved in {dataset_dir})"
        + (
            f"; the SKILL.md was truncated to {teacher.get('skill_tokens')} of "
            f"{teacher.get('skill_tokens_full')} tokens for the teacher"
            if teacher.get("skill_truncated")
            else ""
        )
    )
    reporter.event(
        "dataset_built",
        f"Dataset built: {len(dataset.train)} train and {len(dataset.held_out)} held-out teacher answers",
        data={
            "train_examples": len(dataset.train),
            "held_out_examples": len(dataset.held_out),
            "recipe": "distill",
            "stats": stats,
        },
    )
    kl_text = None
    if config.get("distill_loss", "kl") == "kl":
        from skill_adapter.training.teacher import Teacher

        kl_text = Teacher(
            base,
            tokenizer,
            skill_text=skill_file.read_text(encoding="utf-8", errors="replace"),
            max_new_tokens=int(config.get("teacher_max_new_tokens", 128)),
            context=min(
                int(getattr(base.config, "max_position_embeddings", 0) or 4096),
                max(int(config["max_seq_length"]), 256),
            ),
        ).skill_text
    result = train_adapter(
        config=config,
        dataset=dataset,
        output_dir=output_dir,
        reporter=reporter,
        loaded=loaded,
        kl_skill_text=kl_text,
        job_id=job_id,
        skill_name=skill.name,
    )
    if result.cancelled:
        return "cancelled", None, None
    return "succeeded", None, str(result.adapter_path)


def _attach_log_handlers(reporter: JobReporter) -> list[tuple[logging.Logger, logging.Handler]]:
    """Route the libraries' and our own log records of this process to the job's log."""
    handler = DatabaseLogHandler(reporter)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    attached: list[tuple[logging.Logger, logging.Handler]] = []
    for name in ("skill_adapter", "transformers", "peft", "trl"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        attached.append((logger, handler))
    return attached


def _detach_log_handlers(attached: list[tuple[logging.Logger, logging.Handler]]) -> None:
    for logger, handler in attached:
        logger.removeHandler(handler)
        handler.close()
