"""Train a job: parse -> build -> train -> record, in the child process the supervisor spawned for it.

The life of the run around it (claim, spawn, heartbeat, kill, record a dead child's end, requeue) is the
supervisor's, the same for every kind of queued work: ``worker/supervisor.py``. ``run_claimed_job`` is the
training kind's child entry point (``queued.TRAINING.child``).
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import Any

from skill_adapter import crud, queued
from skill_adapter.core.budget import work_budget
from skill_adapter.core.config import Settings
from skill_adapter.core.errors import SkillAdapterError
from skill_adapter.queued import TRAINING
from skill_adapter.reporting import DatabaseLogHandler, JobReporter, db_call

log = logging.getLogger(__name__)


def execute_job(job_id: str, *, settings: Settings) -> str:
    """Claim ``job_id`` and train it in a child process under the supervisor; its final status or ``skipped``."""
    from skill_adapter.worker.supervisor import supervise

    return supervise(TRAINING, job_id, settings=settings)


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
    end: dict[str, Any] = {"adapter_path": adapter_path} if adapter_path is not None else {}
    db_call(
        settings, queued.finish, kind=TRAINING, work_id=job_id, status=status, error=error, worker_id=worker_id, **end
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
