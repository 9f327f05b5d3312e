"""Activation checkpointing on the CPU uses torch's reentrant variant (less resident memory there than
transformers 5's non-reentrant default, docs/benchmarks.md), with the loss and the adapter's gradients of a
step without checkpointing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import transformers.modeling_utils
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTTrainer

from skill_adapter.assets import TINY_MODEL_DIR
from skill_adapter.datasets.builder import Example
from skill_adapter.training.model import lora_config
from skill_adapter.training.trainer import records, sft_config

EXAMPLES = [
    Example("How do I word a commit?", "Use the imperative mood: add, not added.", "procedure", "Format"),
    Example("Subject length?", "At most 50 characters, no full stop at the end of it.", "fact", "Subject"),
]
CONFIG = {
    "num_epochs": 1, "batch_size": 2, "gradient_accumulation_steps": 1, "learning_rate": 1e-3,
    "max_seq_length": 512, "logging_steps": 1, "save_steps": 100, "seed": 0,
    "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
}  # fmt: skip


class Gradients(TrainerCallback):
    """The adapter's gradients just before the optimizer step."""

    def __init__(self) -> None:
        self.grads: dict[str, torch.Tensor] = {}

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


def step(tmp_path: Path, *, checkpointing: bool) -> tuple[float, dict[str, torch.Tensor]]:
    """One optimizer step of the trainer (which turns checkpointing on in ``train()``): (loss, adapter
    gradients by name)."""
    config = {**CONFIG, "gradient_checkpointing": checkpointing}
    torch.manual_seed(0)  # the same LoRA initialisation on both sides
    gradients = Gradients()
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR),
        args=sft_config(config, output_dir=tmp_path / str(checkpointing), has_eval=False, cuda=False, bf16=False),
        train_dataset=records(EXAMPLES),
        processing_class=AutoTokenizer.from_pretrained(TINY_MODEL_DIR),
        peft_config=lora_config(config),
        callbacks=[gradients],
    )
    trainer.args.save_strategy = "no"
    # a non-zero B matrix, so that the A matrices get a gradient too
    assert trainer.model is not None
    for name, parameter in trainer.model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.02, generator=torch.Generator().manual_seed(len(name)))
    output = trainer.train()
    assert trainer.state.global_step == 1
    return output.training_loss, gradients.grads


def test_cpu_checkpointing_is_reentrant_with_the_same_loss_and_gradients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    real = transformers.modeling_utils.checkpoint

    def spy(function: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("use_reentrant"))
        return real(function, *args, **kwargs)

    monkeypatch.setattr(transformers.modeling_utils, "checkpoint", spy)
    loss, grads = step(tmp_path, checkpointing=True)
    assert calls and set(calls) == {True}, f"checkpointed layers ran with use_reentrant={set(calls)}"

    plain_loss, plain_grads = step(tmp_path, checkpointing=False)
    assert loss == pytest.approx(plain_loss, rel=1e-6)
    assert grads.keys() == plain_grads.keys() and len(grads) > 0
    for name, grad in grads.items():
        assert grad.abs().sum() > 0, name  # the gradient reached every adapter matrix through the recomputation
        torch.testing.assert_close(grad, plain_grads[name], rtol=1e-4, atol=1e-7, msg=name)


def test_only_the_cpu_overrides_transformers_default() -> None:
    def args(checkpointing: bool, *, cuda: bool = False) -> Any:
        config = {**CONFIG, "gradient_checkpointing": checkpointing}
        return sft_config(config, output_dir=Path("out"), has_eval=False, cuda=cuda, bf16=cuda)

    assert args(True).activation_checkpointing and args(True).activation_checkpointing_kwargs == {"use_reentrant": True}
    assert not args(False).activation_checkpointing and not args(False).activation_checkpointing_kwargs
    if torch.cuda.is_available():  # transformers' own default (non-reentrant) stays on CUDA
        on_cuda = args(True, cuda=True)
        assert on_cuda.activation_checkpointing and not on_cuda.activation_checkpointing_kwargs
