"""What an adapter does, in one example: the same prompt answered by the base model and by the adapter.

``skill-adapter train`` prints this after training. One model is loaded, with the adapter attached; the
base answer is generated with the adapter disabled, so both answers share weights and decoding (greedy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel

from skill_adapter.training.convert import ensure_model
from skill_adapter.training.hardware import detect_hardware
from skill_adapter.training.model import load_base_model, load_tokenizer

TEMPLATE_KWARGS = {"enable_thinking": False}  # as in training


@dataclass
class Sample:
    prompt: str
    base: str
    adapter: str


def first_held_out_prompt(output_dir: Path) -> str | None:
    """The first held-out prompt of a job's saved dataset (else the first training prompt)."""
    for split in ("held_out", "train"):
        path = output_dir / "dataset" / f"{split}.jsonl"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                return str(record["prompt"][-1]["content"])
    return None


def compare(config: dict[str, Any], adapter_path: Path, prompt: str, *, max_new_tokens: int = 48) -> Sample:
    """Greedy answers to ``prompt`` from the base model and from the base model with the adapter."""
    hardware = detect_hardware()
    ensure_model(config["model"], config.get("base_model"))
    tokenizer = load_tokenizer(config["model"])
    base = load_base_model(config, hardware, for_training=False)
    if not hardware.cuda or config["adapter_type"] != "qlora":
        base = base.to(torch.device("cuda" if hardware.cuda else "cpu"))  # type: ignore[arg-type]
    model = PeftModel.from_pretrained(base, str(adapter_path), is_trainable=False).eval()
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True, **TEMPLATE_KWARGS
    )
    inputs = tokenizer(text, add_special_tokens=False, return_tensors="pt").to(next(model.parameters()).device)

    def generate() -> str:
        with torch.inference_mode():
            out = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.convert_tokens_to_ids(tokenizer.eos_token),
            )
        return str(tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)).strip()

    with model.disable_adapter():
        base_answer = generate()
    return Sample(prompt=prompt, base=base_answer, adapter=generate())


def one_line(text: str, width: int = 150) -> str:
    """``text`` on one line (line breaks shown as " / "), cut to ``width`` characters."""
    flat = " / ".join(part.strip() for part in text.strip().splitlines() if part.strip()) or "(empty)"
    return flat if len(flat) <= width else flat[: width - 3] + "..."
