"""Trainer callbacks: live progress into the database, checkpoint markers, epoch checkpoints, cancel."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from skill_adapter.core.errors import TrainingError
from skill_adapter.reporting import JobReporter
from skill_adapter.training.checkpoints import mark_complete, prune_checkpoints
from skill_adapter.training.hardware import gpu_figures


class ProgressCallback(TrainerCallback):
    """At every logging step: a metric point (loss, LR, grad norm, tokens/s, ETA) and the job's progress."""

    def __init__(self, reporter: JobReporter, *, num_epochs: int) -> None:
        self.reporter = reporter
        self.num_epochs = num_epochs
        self._started = time.monotonic()
        self._first_step = 0
        self._last_tokens: float | None = None
        self._last_time = self._started
        self._steps_written: set[int] = set()  # steps this run has written a metric point for

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any):
        self._started = self._last_time = time.monotonic()
        self._first_step = state.global_step
        self.reporter.progress(total_steps=state.max_steps, step=state.global_step)
        self.reporter.log(
            f"training {state.max_steps} optimizer steps over {self.num_epochs} epoch(s)"
            + (f", resuming at step {state.global_step}" if state.global_step else "")
        )

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kw: Any,
    ):
        logs = logs or {}
        if "loss" not in logs and "eval_loss" not in logs:
            return
        now = time.monotonic()
        step, total = state.global_step, max(state.max_steps, 1)
        elapsed = now - self._started
        done = step - self._first_step
        eta = elapsed / done * (total - step) if done > 0 else None
        tokens_per_second = None
        if "num_tokens" in logs:  # TRL's running count of non-padding tokens
            if self._last_tokens is not None and now > self._last_time:
                tokens_per_second = (logs["num_tokens"] - self._last_tokens) / (now - self._last_time)
            elif self._first_step == 0 and elapsed > 0:
                tokens_per_second = logs["num_tokens"] / elapsed
            self._last_tokens, self._last_time = logs["num_tokens"], now
        epoch = float(logs.get("epoch", state.epoch or 0.0))
        point = {
            "step": step,
            "epoch": epoch,
            "loss": logs.get("loss"),
            "eval_loss": logs.get("eval_loss"),
            "learning_rate": logs.get("learning_rate", _last_learning_rate(state)),
            "grad_norm": logs.get("grad_norm"),
            "tokens_per_second": tokens_per_second,
            "elapsed_seconds": elapsed,
            "eta_seconds": eta,
            **gpu_figures(),
        }
        job_values: dict[str, Any] = {
            "step": step,
            "progress": min(step / total, 1.0),
            "current_epoch": min(math.floor(epoch) + 1, self.num_epochs),
            "eta_seconds": eta,
        }
        if point["loss"] is not None:
            job_values["loss"] = point["loss"]
        if point["eval_loss"] is not None:
            job_values["eval_loss"] = point["eval_loss"]
        if point["learning_rate"] is not None:
            job_values["learning_rate"] = point["learning_rate"]
        # One point per step: a held-out loss at the same step merges into this run's point; a point left by
        # an earlier attempt (a resume redoes the steps after its checkpoint) is replaced.
        self.reporter.metric(job_values=job_values, merge=step in self._steps_written, **point)
        self._steps_written.add(step)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in logs.items() if isinstance(v, (int, float)))
        if "loss" in logs:  # the step's progress line, replaced when a resumed run redoes the step
            self.reporter.log(f"step {step}/{total}: {shown}", step=step)
        else:
            self.reporter.log(f"evaluation at step {step}/{total}: {shown}")


def step_metrics(state: TrainerState) -> dict[str, float]:
    """The metrics logged up to the current step: the latest train loss and token accuracy, and the latest
    validation loss and token accuracy (what a checkpoint saved now was trained and judged on)."""
    wanted = {
        "loss": "train_loss",
        "mean_token_accuracy": "train_token_accuracy",
        "eval_loss": "validation_loss",
        "eval_mean_token_accuracy": "validation_token_accuracy",
    }
    found: dict[str, float] = {}
    for entry in reversed(state.log_history):
        if entry.get("step", 0) > state.global_step:
            continue
        for key, name in wanted.items():
            value = entry.get(key)
            if name not in found and isinstance(value, (int, float)):
                found[name] = float(value)
        if len(found) == len(wanted):
            break
    return {name: found[name] for name in wanted.values() if name in found}


def _last_learning_rate(state: TrainerState) -> float | None:
    for entry in reversed(state.log_history):
        if "learning_rate" in entry:
            return float(entry["learning_rate"])
    return None


class CheckpointCallback(TrainerCallback):
    """Saves at the end of every epoch too, and marks each checkpoint complete once it is written."""

    def __init__(self, reporter: JobReporter, output_dir: Path, *, keep: int | None = None) -> None:
        self.reporter = reporter
        self.output_dir = output_dir
        self.keep = keep  # complete checkpoints kept (None: all)
        self.resumed_from: Path | None = None  # never pruned while this run may still need it
        self._marked: set[int] = set()
        self._epoch_done: int | None = None

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any):
        control.should_save = True
        if str(args.eval_strategy).endswith("steps"):  # with EVAL_STEPS, still evaluate at every epoch end
            control.should_evaluate = True
        # Announced at the save that follows (after the epoch's evaluation), with that evaluation's figures.
        self._epoch_done = round(state.epoch or 0.0)

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kw: Any,
    ):
        figures = {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
        loss = figures.get("eval_loss")
        self.reporter.event(
            "validation_finished",
            f"Validation at step {state.global_step}" + (f": loss {loss:.4g}" if loss is not None else ""),
            data={"step": state.global_step, "epoch": state.epoch, "metrics": figures},
        )

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any):
        metrics = step_metrics(state)
        epoch = self._epoch_done
        if epoch is not None:
            self._epoch_done = None
            shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            self.reporter.event(
                "epoch_finished",
                f"Epoch {epoch} of {int(args.num_train_epochs)} finished at step {state.global_step}"
                + (f" ({shown})" if shown else ""),
                data={"epoch": epoch, "step": state.global_step, "metrics": metrics},
            )
        folder = self.output_dir / f"checkpoint-{state.global_step}"
        if folder.is_dir() and state.global_step not in self._marked:
            self._marked.add(state.global_step)
            mark_complete(folder, step=state.global_step)
            self.reporter.checkpoint(step=state.global_step, path=folder, metrics=metrics)
            self.reporter.log(f"saved checkpoint {folder.name}")
            self._prune(protect=self.resumed_from)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any):
        self._prune(protect=None)  # the checkpoint this run resumed from is not needed any more

    def _prune(self, *, protect: Path | None) -> None:
        if self.keep is None:
            return
        for old in prune_checkpoints(self.output_dir, keep=self.keep, protect=protect):
            self.reporter.forget_checkpoint(path=old)
            self.reporter.log(f"removed old checkpoint {old.name} (keeping the newest {self.keep})")


class CancelCallback(TrainerCallback):
    """Stops training cleanly (saving a last checkpoint) once the job's cancel flag is set."""

    def __init__(self, reporter: JobReporter) -> None:
        self.reporter = reporter
        self.cancelled = False

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any):
        self.reporter.heartbeat()
        if self.reporter.cancel_requested():
            self.cancelled = True
            control.should_training_stop = True
            control.should_save = True


class FiniteLossCallback(TrainerCallback):
    """Fails the run (``non_finite_loss``) as soon as a logged loss or gradient norm is NaN or infinite.

    Such a run would otherwise go on and "succeed" with an adapter whose tensors are all NaN.
    """

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kw: Any,
    ):
        for key in ("loss", "grad_norm", "eval_loss"):
            value = (logs or {}).get(key)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                raise TrainingError(
                    f"training diverged at step {state.global_step}: {key} is {value}. Lower learning_rate or "
                    "lora_alpha (the adapter's scale is lora_alpha / lora_r), or check the data",
                    code="non_finite_loss",
                )
