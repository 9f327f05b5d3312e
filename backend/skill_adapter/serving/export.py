"""Export: an adapter merged into its base model, saved as a standalone model (safetensors + tokenizer)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from skill_adapter.evaluation.adapters import check_adapter_folder
from skill_adapter.training.convert import ensure_model
from skill_adapter.training.model import load_tokenizer


def export_merged(adapter_path: Path, out: Path, *, trust_remote_code: bool = False) -> Path:
    """Merge the LoRA weights of ``adapter_path`` into its base (in float32 on the CPU, never quantised) and
    save the result to ``out``; it loads with ``AutoModelForCausalLM.from_pretrained(out)``."""
    check_adapter_folder(adapter_path)
    base = json.loads((adapter_path / "adapter_config.json").read_text(encoding="utf-8"))["base_model_name_or_path"]
    ensure_model(base)
    model = AutoModelForCausalLM.from_pretrained(
        base, dtype=torch.float32, use_safetensors=True, trust_remote_code=trust_remote_code
    )
    merged = PeftModel.from_pretrained(model, str(adapter_path), is_trainable=False).merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out), safe_serialization=True)
    load_tokenizer(base, trust_remote_code=trust_remote_code).save_pretrained(str(out))
    card = adapter_path / "README.md"
    if card.is_file():
        text = card.read_text(encoding="utf-8")
        note = (
            f"\n## This folder\n\nThe adapter above merged into `{base}` (`merge_and_unload`): a plain model,"
            f' no PEFT needed. `AutoModelForCausalLM.from_pretrained("{out}")`.\n'
        )
        (out / "README.md").write_text(text + note, encoding="utf-8")
    shutil.copy2(adapter_path / "adapter_config.json", out / "merged_from_adapter_config.json")
    return out
