"""The loss covers the assistant's answer only: checked on the tokens TRL will train on, for the tiny
model's ChatML template and for Qwen3's own template (shipped inside the installed TRL package)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trl
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTTrainer

from skill_adapter.assets import TINY_MODEL_DIR
from skill_adapter.datasets.builder import Example
from skill_adapter.training.trainer import records, sft_config

QWEN3_TEMPLATE = Path(trl.__file__).parent / "chat_templates" / "qwen3.jinja"
EXAMPLE = Example("How do I word a commit?", "Use the imperative mood: add, not added.", "procedure", "Format")


def trained_text(tmp_path: Path, chat_template: str | None) -> tuple[str, str]:
    """(context, target): the decoded tokens outside and inside the completion mask of one example."""
    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL_DIR)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    config = {
        "num_epochs": 1, "batch_size": 1, "gradient_accumulation_steps": 1, "learning_rate": 1e-3,
        "max_seq_length": 512, "logging_steps": 1, "save_steps": 100, "seed": 0,
    }  # fmt: skip
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR),
        args=sft_config(config, output_dir=tmp_path, has_eval=False, cuda=False, bf16=False),
        train_dataset=records([EXAMPLE]),
        processing_class=tokenizer,
    )
    row = trainer.train_dataset[0]
    ids = row["input_ids"]
    mask = row["completion_mask"] if "completion_mask" in row else [label != -100 for label in row["labels"]]
    context = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if not m])
    target = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    return context, target


def test_tiny_chatml_template_trains_on_the_answer_only(tmp_path: Path) -> None:
    context, target = trained_text(tmp_path, None)
    assert context == "<|im_start|>user\nHow do I word a commit?<|im_end|>\n<|im_start|>assistant\n"
    assert target.startswith("Use the imperative mood: add, not added.<|im_end|>")


@pytest.mark.skipif(not QWEN3_TEMPLATE.is_file(), reason="this TRL version ships no qwen3.jinja")
def test_qwen3_template_never_trains_on_the_empty_think_block(tmp_path: Path) -> None:
    template = QWEN3_TEMPLATE.read_text()
    assert "{% generation %}" not in template, "Qwen3's own template has no generation markers"
    context, target = trained_text(tmp_path, template)
    assert context.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert "<think>" not in target and "</think>" not in target
    assert target.startswith("Use the imperative mood: add, not added.<|im_end|>")
    assert "How do I word a commit?" not in target
