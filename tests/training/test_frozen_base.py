"""Training moves the adapter and nothing else: LoRA on the fp32 base, QLoRA on the 4-bit base."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer
from trl import SFTTrainer

from skill_adapter.assets import TINY_MODEL_DIR
from skill_adapter.datasets.builder import Example
from skill_adapter.training.hardware import detect_hardware
from skill_adapter.training.model import attach_adapter, load_base_model
from skill_adapter.training.trainer import records, sft_config

pytestmark = pytest.mark.slow

EXAMPLES = [Example(f"Question {i}?", f"Answer number {i} is short.", "procedure", "s") for i in range(8)]


def snapshot(model: Any) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("adapter", ["lora", "qlora"])
def test_adapter_weights_change_and_base_weights_do_not(tmp_path: Path, adapter: str) -> None:
    if adapter == "qlora":
        pytest.importorskip("bitsandbytes")
    config = {
        "model": str(TINY_MODEL_DIR), "adapter_type": adapter, "quant_bits": 4, "lora_r": 8, "lora_alpha": 16,
        "lora_dropout": 0.0, "num_epochs": 2, "batch_size": 4, "gradient_accumulation_steps": 1,
        "learning_rate": 1e-2, "max_seq_length": 128, "logging_steps": 1, "save_steps": 1000, "seed": 0,
    }  # fmt: skip
    model = attach_adapter(load_base_model(config, detect_hardware()), config)
    before = snapshot(model)
    trainer = SFTTrainer(
        model=model,
        args=sft_config(config, output_dir=tmp_path, has_eval=False, cuda=False, bf16=False),
        train_dataset=records(EXAMPLES),
        processing_class=AutoTokenizer.from_pretrained(TINY_MODEL_DIR),
    )
    trainer.train()
    after = snapshot(model)
    assert before.keys() == after.keys()
    lora = [name for name in before if "lora_" in name]
    base = [name for name in before if "lora_" not in name]
    assert lora and base
    assert all(not torch.equal(before[name], after[name]) for name in lora if "lora_B" in name)
    assert all(torch.equal(before[name], after[name]) for name in base), "a base weight moved"
