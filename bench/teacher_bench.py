"""The distill recipe's teacher stage, before and after its KV-cache reuse, on the real model.

Same model, skill and prompts, one process, both ways in turn:

- *answers*: the teacher (base model, SKILL.md as system prompt) answers N prompts, 8 per batch, greedy. Before:
  every batch re-encodes the SKILL.md for each of its prompts. After: the SKILL.md prefix is encoded once and
  its KV cache copied per batch. Also reports how many greedy answers are identical both ways.
- *KL targets*: the teacher's top-k distribution over every answer token. Before: the teacher ran at every
  training step, so once per epoch over the whole set. After: once, with the prefix cache.

Prints one JSON line with the times, the ratios and the load average.

    SKILL_ADAPTER_MODELS_DIR=/tmp/sa-models flock /tmp/heavy.lock uv run python bench/teacher_bench.py \\
        skills/commit-messages --prompts 8 --new-tokens 48 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("skill", type=Path, help="a skill folder (with a SKILL.md)")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=2, help="epochs the per-step teacher would have run")
    parser.add_argument("--top-k", type=int, default=64)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from skill_adapter.core.config import Settings
    from skill_adapter.datasets.builder import Example
    from skill_adapter.datasets.distill import seed_prompts
    from skill_adapter.skills.folder import load_skill_path
    from skill_adapter.training.convert import ensure_model
    from skill_adapter.training.distill_trainer import kl_records, teacher_targets
    from skill_adapter.training.model import load_tokenizer
    from skill_adapter.training.teacher import Teacher

    torch.set_grad_enabled(False)
    settings = Settings(_env_file=None, models_dir=os.environ.get("SKILL_ADAPTER_MODELS_DIR") or None)  # type: ignore[call-arg]
    resolved = settings.base_model()
    ensure_model(resolved.path, resolved.name)
    model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=torch.float32).eval()
    tokenizer = load_tokenizer(resolved.path)
    skill_file = args.skill.resolve() / "SKILL.md"
    skill = load_skill_path(skill_file)
    prompts = [p.text for p in seed_prompts(skill, seed=42, skill_file=skill_file)][: args.prompts]
    skill_text = skill_file.read_text(encoding="utf-8")
    load_before = os.getloadavg()

    answers: dict[bool, list[str]] = {}
    seconds: dict[str, float] = {}
    for reuse in (False, True):
        teacher = Teacher(
            model, tokenizer, skill_text=skill_text, max_new_tokens=args.new_tokens, context=2048, reuse_prefix=reuse
        )
        started = time.perf_counter()
        answers[reuse] = teacher.answer(prompts)
        seconds[f"answers_{'after' if reuse else 'before'}"] = time.perf_counter() - started

    examples = [Example(p, a or "ok", "model", "s") for p, a in zip(prompts, answers[True], strict=True)]
    rows = list(kl_records(examples, tokenizer=tokenizer, skill_text=teacher.skill_text, max_length=2048))
    started = time.perf_counter()
    for _ in range(args.epochs):  # what the per-step teacher cost: its forward pass on every row, every epoch
        for start in range(0, len(rows), 4):
            teacher_targets(model, rows[start : start + 4], top_k=args.top_k, reuse_prefix=False)
    seconds["targets_before"] = time.perf_counter() - started
    started = time.perf_counter()
    teacher_targets(model, rows, top_k=args.top_k)
    seconds["targets_after"] = time.perf_counter() - started

    before = seconds["answers_before"] + seconds["targets_before"]
    after = seconds["answers_after"] + seconds["targets_after"]
    print(
        json.dumps(
            {
                "skill": args.skill.name,
                "model": resolved.name,
                "prompts": len(prompts),
                "new_tokens": args.new_tokens,
                "epochs": args.epochs,
                "skill_tokens": teacher.skill_tokens,
                "seconds": {k: round(v, 1) for k, v in seconds.items()},
                "answers_speedup": round(seconds["answers_before"] / seconds["answers_after"], 2),
                "targets_speedup": round(seconds["targets_before"] / seconds["targets_after"], 2),
                "teacher_stage_speedup": round(before / after, 2),
                "identical_greedy_answers": sum(a == b for a, b in zip(answers[False], answers[True], strict=True)),
                "load_average_before": load_before,
                "load_average_after": os.getloadavg(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
