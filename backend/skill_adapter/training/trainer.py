"""Train a LoRA/QLoRA adapter on a built dataset with TRL's SFTTrainer (completion-only loss)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from datasets import Dataset, disable_progress_bars
from transformers import Trainer, set_seed
from transformers.trainer_callback import PrinterCallback
from trl import SFTConfig, SFTTrainer

from skill_adapter.core.errors import TrainingError
from skill_adapter.reporting import JobReporter
from skill_adapter.training.callbacks import (
    CancelCallback,
    CheckpointCallback,
    FiniteLossCallback,
    ProgressCallback,
    step_metrics,
)
from skill_adapter.training.checkpoints import latest_complete_checkpoint, mark_complete, non_finite_tensors
from skill_adapter.training.convert import ensure_model
from skill_adapter.training.hardware import detect_hardware
from skill_adapter.training.model import attach_adapter, load_base_model, load_tokenizer
from skill_adapter.training.trackers import tracker_arguments

if TYPE_CHECKING:
    from skill_adapter.datasets.builder import BuiltDataset
    from skill_adapter.datasets.distill import DistillDataset

log = logging.getLogger(__name__)

OOM_ADVICE = (
    "Training ran out of memory. Try, in this order: a smaller batch_size (e.g. 2) with more "
    "gradient_accumulation_steps (e.g. 8) to keep the effective batch, adapter_type 'qlora' with "
    "quant_bits 4, or a shorter max_seq_length (e.g. 1024)."
)


@dataclass
class TrainResult:
    adapter_path: Path | None
    cancelled: bool
    global_step: int
    train_loss: float | None


def score_completion_rows_only() -> bool:
    """Make TRL's fused LM head project only the positions that have a label, on the CPU too.

    SFTTrainer's loss never builds the ``(batch, length, vocabulary)`` logits: ``trl.trainer.utils.add_fused_lm_head``
    projects the hidden states through the LM head in tiles and keeps per-token log-probabilities, entropy and
    top-1 hits. On CUDA and XPU it first drops every position whose label is ``-100`` (prompt and padding); on
    any other device it scores every position, because on compiling accelerators (Neuron) a row count changing
    with each batch would recompile the kernel. Nothing is compiled on the CPU, where TRL's tiles run as eager
    torch ops, so that caution only costs: with completion-only loss a third of the positions carry a label,
    and scoring all of them made the head (three vocabulary-wide matrix products per scored row and a dozen
    vocabulary-wide temporaries) the largest single cost of a CPU step, slower than transformers' own
    full-logits loss (docs/benchmarks.md, "Against LLaMA-Factory"). The loss, its gradient and the logged
    metrics are the same either way: the skipped positions contribute zero to each.

    TRL decides through the module-level name ``_use_triton`` read at every call; this wraps it so that it
    also answers yes for the CPU. Only that decision reads the name in ``trl.trainer.utils`` (the kernel's own
    choice of Triton or torch code reads its module's copy, untouched). Idempotent. Returns whether the head
    now compacts on the CPU (False with a TRL that has no such switch, where nothing is changed).
    """
    try:
        import trl.trainer.utils as trl_utils
    except ImportError:  # pragma: no cover - TRL is a dependency
        return False
    decide = getattr(trl_utils, "_use_triton", None)
    if decide is None or not hasattr(trl_utils, "add_fused_lm_head"):
        log.warning("this TRL has no fused LM head switch; CPU steps score every position")
        return False
    if getattr(decide, "compacts_on_cpu", False):
        return True

    def compact_rows(device: torch.device) -> bool:
        return device.type == "cpu" or bool(decide(device))

    compact_rows.compacts_on_cpu = True  # type: ignore[attr-defined]
    trl_utils._use_triton = compact_rows
    return True


score_completion_rows_only()


# Rendered with every example: Qwen3-style templates then put the empty `<think></think>` block in the
# generation prompt, so it is context the model sees and never a target it is trained to produce.
CHAT_TEMPLATE_KWARGS = {"enable_thinking": False}


def records(examples: list[Any]) -> Dataset:
    """Conversational prompt/completion records: TRL renders them with the model's chat template and
    trains on the completion only."""
    rows = [
        {"prompt": r["prompt"], "completion": r["completion"], "chat_template_kwargs": CHAT_TEMPLATE_KWARGS}
        for r in (e.to_record() for e in examples)
    ]
    return Dataset.from_list(rows)


def batch_shape(config: dict[str, Any], *, flash_attention: bool) -> tuple[int, int]:
    """(per-device batch, gradient accumulation) for a job.

    Padding-free packing flattens a batch into one long row. Flash-attention's variable-length kernel
    keeps that cheap; sdpa would attend over the whole flattened batch under a block mask, quadratic in
    its length. Without flash-attention a packed job therefore runs one row per forward pass and
    accumulates over the batch instead: the same rows per optimizer step, a fraction of the attention.
    """
    batch, accumulation = int(config["batch_size"]), int(config["gradient_accumulation_steps"])
    if config.get("packing") and not flash_attention:
        return 1, batch * accumulation
    return batch, accumulation


# Activation checkpointing on the CPU: torch's reentrant variant, as transformers used before 5.0 and
# LLaMA-Factory still does. With transformers 5's default (non-reentrant) the process's resident memory over
# the first two steps of smollm2-135m at batch 8 peaked at 4,734 MiB, with this one at 3,226 MiB
# (docs/benchmarks.md, "Against LLaMA-Factory"); the loss and the gradients are the same either way
# (tests/training/test_checkpointing.py). transformers makes the embedding output require grad
# (`enable_input_require_grads`), which the reentrant variant needs when the base is frozen.
CPU_CHECKPOINTING: dict[str, Any] = {"use_reentrant": True}


def sft_config(
    config: dict[str, Any],
    *,
    output_dir: Path,
    has_eval: bool,
    cuda: bool,
    bf16: bool,
    flash_attention: bool = False,
    trackers: dict[str, Any] | None = None,
) -> SFTConfig:
    """The TRL configuration for one job: the guide's hyper-parameters plus our checkpoint policy."""
    gradient_checkpointing = config.get("gradient_checkpointing")
    checkpointing = bool(cuda if gradient_checkpointing is None else gradient_checkpointing)
    batch, accumulation = batch_shape(config, flash_attention=flash_attention)
    return SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=int(config["num_epochs"]),
        per_device_train_batch_size=batch,
        per_device_eval_batch_size=batch,
        gradient_accumulation_steps=accumulation,
        learning_rate=float(config["learning_rate"]),
        max_length=int(config["max_seq_length"]),
        completion_only_loss=True,
        packing=bool(config.get("packing", False)),
        padding_free=bool(config.get("packing", False)),
        logging_steps=int(config["logging_steps"]),
        logging_first_step=True,
        save_strategy="steps",
        save_steps=int(config["save_steps"]),
        eval_strategy="no" if not has_eval else "steps" if config.get("eval_steps") else "epoch",
        eval_steps=config.get("eval_steps") or None,
        seed=int(config["seed"]),
        data_seed=int(config["seed"]),
        bf16=bf16,
        fp16=cuda and not bf16,
        use_cpu=not cuda,
        activation_checkpointing=checkpointing,
        activation_checkpointing_kwargs=dict(CPU_CHECKPOINTING) if checkpointing and not cuda else None,
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataset_num_proc=None,
        **(trackers or {"report_to": "none"}),
    )


def load_for_training(config: dict[str, Any], reporter: JobReporter, *, trust_remote_code: bool = False) -> Any:
    """(hardware, tokenizer, base model) for a job, converting a built-in model first if needed."""
    hardware = detect_hardware()
    disable_progress_bars()  # dataset tokenisation bars would interleave with the job's own progress
    set_seed(int(config["seed"]))
    ensure_model(config["model"], config.get("base_model"), progress=reporter.log)
    reporter.log(
        f"loading {config['model']} ({config['adapter_type']}"
        + (f", {config['quant_bits']}-bit" if config["adapter_type"] == "qlora" else "")
        + f", {hardware.precision}, attention {hardware.attn_implementation}, "
        f"{'cuda' if hardware.cuda else 'cpu'})"
    )
    tokenizer = load_tokenizer(config["model"], trust_remote_code=trust_remote_code)
    return hardware, tokenizer, load_base_model(config, hardware, trust_remote_code=trust_remote_code)


def train_adapter(
    *,
    config: dict[str, Any],
    dataset: BuiltDataset | DistillDataset,
    output_dir: Path,
    reporter: JobReporter,
    trust_remote_code: bool = False,
    loaded: Any = None,
    kl_skill_text: str | None = None,
    job_id: str = "",
    skill_name: str = "",
) -> TrainResult:
    """Train, checkpointing into ``output_dir``; resume from its newest complete checkpoint if any.

    ``loaded``: what :func:`load_for_training` returned, when the caller already loaded the model.
    ``kl_skill_text``: train with the distill recipe's KL loss, this text in the teacher's context.
    """
    hardware, tokenizer, base = loaded or load_for_training(config, reporter, trust_remote_code=trust_remote_code)
    set_seed(int(config["seed"]))
    model = attach_adapter(base, config)

    has_eval = bool(dataset.held_out)
    reporter.log(
        f"building the trainer (tokenising {len(dataset.train)} train"
        + (f" and {len(dataset.held_out)} held-out" if has_eval else "")
        + " examples)"
        + (" with the KL loss to the prompted teacher" if kl_skill_text is not None else "")
    )
    progress = ProgressCallback(reporter, num_epochs=int(config["num_epochs"]))
    cancel = CancelCallback(reporter)
    keep = config.get("keep_checkpoints")
    checkpoints = CheckpointCallback(reporter, output_dir, keep=int(keep) if keep else None)
    args = sft_config(
        config,
        output_dir=output_dir,
        has_eval=has_eval,
        cuda=hardware.cuda,
        bf16=hardware.bf16,
        flash_attention=hardware.attn_implementation == "flash_attention_2",
        trackers=tracker_arguments(
            config.get("report_to"), job_id=job_id or output_dir.name, skill_name=skill_name, output_dir=output_dir
        ),
    )
    callbacks = [progress, FiniteLossCallback(), checkpoints, cancel]
    trainer: Trainer
    if kl_skill_text is not None:
        from skill_adapter.training.distill_trainer import KLCollator, KLDistillTrainer, kl_records, teacher_targets
        from skill_adapter.training.teacher import GenerationCancelled

        args.remove_unused_columns = False
        max_length = int(config["max_seq_length"])
        top_k = int(config.get("distill_top_k", 64))

        def kl_rows(examples: list[Any]) -> Any:
            rows = kl_records(examples, tokenizer=tokenizer, skill_text=kl_skill_text, max_length=max_length)
            if top_k <= 0:  # the whole vocabulary: too large to keep, the teacher runs at every step
                return rows
            started = time.monotonic()
            targets = teacher_targets(model, list(rows), top_k=top_k, cancelled=reporter.cancel_requested)
            reporter.log(
                f"teacher: top-{top_k} targets for {len(targets)} answers in {time.monotonic() - started:.1f} s"
            )
            return targets

        try:  # the teacher's targets: a pass over every answer, before the first step; a cancel stops it
            train_rows = kl_rows(dataset.train)
            eval_rows = kl_rows(dataset.held_out) if has_eval else None
        except GenerationCancelled:
            reporter.log("cancelled while the teacher computed the KL targets")
            return TrainResult(None, True, 0, None)
        trainer = KLDistillTrainer(
            model=model,
            args=args,
            train_dataset=train_rows,
            eval_dataset=eval_rows,
            data_collator=KLCollator(tokenizer.pad_token_id),
            processing_class=tokenizer,
            callbacks=callbacks,
            top_k=top_k,
        )
    else:
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=records(dataset.train),
            eval_dataset=records(dataset.held_out) if has_eval else None,
            processing_class=tokenizer,
            callbacks=callbacks,
        )
    trainer.remove_callback(PrinterCallback)  # our ProgressCallback logs every step to the job instead
    resume = latest_complete_checkpoint(output_dir)
    if resume is not None:
        reporter.log(f"resuming from {resume.name}")
        checkpoints.resumed_from = resume
    try:
        output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except torch.cuda.OutOfMemoryError as exc:
        raise TrainingError(OOM_ADVICE, code="out_of_memory") from exc
    if cancel.cancelled:
        reporter.log("cancelled; the last checkpoint is kept")
        return TrainResult(None, True, trainer.state.global_step, None)

    final = output_dir / "final"
    trainer.save_model(str(final))
    if bad := non_finite_tensors(final):  # never a "succeeded" adapter full of NaN
        raise TrainingError(
            f"the trained adapter has {len(bad)} tensor(s) with NaN or infinite values (first: {bad[0]}); "
            "lower learning_rate or lora_alpha",
            code="non_finite_loss",
        )
    mark_complete(final, step=trainer.state.global_step)
    reporter.checkpoint(step=trainer.state.global_step, path=final, metrics=step_metrics(trainer.state))
    reporter.log(f"adapter saved to {final}")
    return TrainResult(final, False, trainer.state.global_step, output.training_loss)
