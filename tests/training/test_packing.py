"""Packing puts several examples in one row; attention must stay inside each example."""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTTrainer

from skill_adapter.assets import TINY_MODEL_DIR
from skill_adapter.datasets.builder import Example
from skill_adapter.training.trainer import records, sft_config

EXAMPLES = [
    Example("What is the summary line?", "Imperative mood, under 72 characters.", "procedure", "Format"),
    Example("Which types exist?", "feat, fix, docs, refactor, test, perf, build, ci, chore.", "procedure", "Types"),
    Example("Hello?", "Hi.", "trigger", "description"),
]


def packed_trainer(tmp_path: Path, packing: bool) -> SFTTrainer:
    config = {
        "num_epochs": 1, "batch_size": 3, "gradient_accumulation_steps": 1, "learning_rate": 1e-3,
        "max_seq_length": 512, "logging_steps": 1, "save_steps": 100, "seed": 0, "packing": packing,
    }  # fmt: skip
    return SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR, attn_implementation="sdpa"),
        args=sft_config(config, output_dir=tmp_path, has_eval=False, cuda=False, bf16=False),
        train_dataset=records(EXAMPLES),
        processing_class=AutoTokenizer.from_pretrained(TINY_MODEL_DIR),
    )


def test_a_packed_row_gives_each_example_the_logits_it_has_alone(tmp_path: Path) -> None:
    trainer = packed_trainer(tmp_path, packing=True)
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 1, "all three short examples share one row"
    assert "attention_mask" not in batch, "padding-free rows carry boundaries in position_ids"
    positions = batch["position_ids"][0]
    starts = [*(positions == 0).nonzero().flatten().tolist(), positions.numel()]
    assert len(starts) - 1 == len(EXAMPLES)

    model = trainer.model.eval()
    with torch.no_grad():
        # the same call TRL's compute_loss makes: no KV cache, so the mask follows position_ids
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        for begin, end in itertools.pairwise(starts):
            alone = model(input_ids=batch["input_ids"][:, begin:end], use_cache=False).logits[0]
            assert torch.allclose(packed[begin:end], alone, atol=1e-5), (begin, end)


def test_packing_trains_on_fewer_rows_than_padding(tmp_path: Path) -> None:
    padded = next(iter(packed_trainer(tmp_path / "a", packing=False).get_train_dataloader()))
    packed = next(iter(packed_trainer(tmp_path / "b", packing=True).get_train_dataloader()))
    assert padded["input_ids"].numel() > packed["input_ids"].numel()
    assert int((padded["labels"] != -100).sum()) == int((packed["labels"] != -100).sum())
