"""The embedded default model loads like a hub model, is deterministic to rebuild, and trains."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from skill_adapter.assets import TINY_MODEL_DIR
from skill_adapter.assets.build_tiny_model import build


def test_loads_through_the_auto_classes() -> None:
    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL_DIR)
    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR)
    assert model.config.model_type == "qwen3"
    assert type(model).__name__ == "Qwen3ForCausalLM"
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert len(tokenizer) <= model.config.vocab_size


def test_tokenizer_round_trips_any_text_and_has_a_chat_template() -> None:
    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL_DIR)
    text = "Héllo — wörld ✓ 🙂\n```python\nprint('x')\n```"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n"
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert rendered.startswith(prompt) and prompt.endswith("<|im_start|>assistant\n")


def _digest(folder: Path) -> dict[str, str]:
    names = ["model.safetensors", "tokenizer.json", "config.json", "tokenizer_config.json"]
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in names}


@pytest.mark.slow
def test_rebuild_is_deterministic_and_matches_the_shipped_files(tmp_path: Path) -> None:
    assert _digest(build(tmp_path / "a")) == _digest(build(tmp_path / "b"))
    assert _digest(tmp_path / "a") == _digest(TINY_MODEL_DIR)
