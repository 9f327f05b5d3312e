"""On the CPU, TRL's fused LM head scores only the positions that carry a label (the completion), not the
prompt and the padding; the loss and the logged token accuracy stay those of the full logits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import trl.trainer.utils as trl_utils
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTTrainer

from skill_adapter.assets import TINY_MODEL_DIR
from skill_adapter.datasets.builder import Example
from skill_adapter.training.trainer import records, score_completion_rows_only, sft_config

EXAMPLES = [
    Example("How do I word a commit?", "Use the imperative mood: add, not added.", "procedure", "Format"),
    Example(
        "What goes in the body of a commit message, and how long should its lines be? Give me the rule.",
        "Why the change was made; wrap at 72.",
        "procedure",
        "Body",
    ),
    Example("Subject length?", "At most 50 characters, no full stop at the end of it.", "fact", "Subject"),
]
CONFIG = {
    "num_epochs": 1, "batch_size": 3, "gradient_accumulation_steps": 1, "learning_rate": 1e-3,
    "max_seq_length": 512, "logging_steps": 1, "save_steps": 100, "seed": 0,
}  # fmt: skip


def trainer_and_batch(tmp_path: Path) -> tuple[SFTTrainer, dict[str, Any]]:
    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL_DIR)
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR),
        args=sft_config(CONFIG, output_dir=tmp_path, has_eval=False, cuda=False, bf16=False),
        train_dataset=records(EXAMPLES),
        processing_class=tokenizer,
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(EXAMPLES))])
    return trainer, batch


@pytest.fixture
def scored_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The row count of every call into TRL's chunked log-probability kernel."""
    rows: list[int] = []
    kernel = trl_utils._ChunkedLogProbFunction

    class Counting:
        @staticmethod
        def apply(hidden: torch.Tensor, *args: Any) -> Any:
            rows.append(hidden.shape[0])
            return kernel.apply(hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Counting)
    return rows


def test_the_cpu_head_scores_the_labelled_positions_only(tmp_path: Path, scored_rows: list[int]) -> None:
    trainer, batch = trainer_and_batch(tmp_path)
    labels = batch["labels"]
    batch_size, length = labels.shape
    labelled = int((labels[:, 1:] != -100).sum())
    assert batch_size == len(EXAMPLES) and labelled < batch_size * (length - 1) / 2  # prompts and padding are most

    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, dict(batch))
    loss.backward()  # the compacted rows' gradient reaches the adapter

    positions = batch_size * (length - 1)
    assert scored_rows == [labelled], f"scored {scored_rows} rows; {labelled} of {positions} carry a label"
    assert all(p.grad is not None for n, p in trainer.model.named_parameters() if p.requires_grad)


def test_loss_and_token_accuracy_are_those_of_the_full_logits(tmp_path: Path) -> None:
    trainer, batch = trainer_and_batch(tmp_path)
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch))
        logits = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:]
    mask = labels != -100
    predicted, target = logits[:, :-1][mask], labels[mask]
    expected_loss = torch.nn.functional.cross_entropy(predicted, target)
    expected_accuracy = (predicted.argmax(-1) == target).float().mean().item()

    assert loss.item() == pytest.approx(expected_loss.item(), rel=1e-4)
    assert trainer._metrics["eval"]["mean_token_accuracy"] == [pytest.approx(expected_accuracy)]


def test_the_switch_is_installed_once_and_leaves_cuda_to_trl() -> None:
    assert score_completion_rows_only() is True
    decide = trl_utils._use_triton
    assert score_completion_rows_only() is True and trl_utils._use_triton is decide  # idempotent: no nesting
    assert decide(torch.device("cpu")) is True
    # the kernel module's own switch (Triton code or torch ops) is TRL's, untouched
    from trl.kernels import chunked_logprob

    assert chunked_logprob._use_triton(torch.device("cpu")) is False
