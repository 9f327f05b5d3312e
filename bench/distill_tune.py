"""Tune the distill recipe's ``kl`` training on one saved dataset: many settings, one process, KL only.

The teacher's dataset of a distill job (``dataset/`` of the job, or ``DATA_DIR/distill-cache/<key>/``) is
read once; the teacher's top-k targets are computed once per ``top_k``; then, for each setting, a fresh LoRA
adapter is trained with the recipe's own trainer (``KLDistillTrainer``) and scored: the mean per-token KL
(whole vocabulary) from the prompted base model to the adapter on the held-out *task* prompts, teacher-forced
on the teacher's answers, against the same KL of the base model without the skill. It is the number
``bench/distill_bench.py`` reads from the evaluation report, without the report's generation, so a setting
costs its training and a few forward passes. Prints one JSON line per setting.

    nice -n 19 uv run python bench/distill_tune.py skills/commit-messages DATA_DIR/distill-cache/<key> \
        --setting epochs=6,lr=1e-3 --setting epochs=3,lr=2e-4,accumulation=4
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "epochs": 2,
    "lr": 1e-3,
    "batch": 4,
    "accumulation": 1,
    "r": 16,
    "alpha": None,  # twice r
    "top_k": 64,
    "dropout": 0.05,
    "targets": "all-linear",
    "scheduler": "linear",
    "warmup": 0.0,
    "off_skill": 1,  # train on the off-skill prompts too (1) or on the task prompts only (0)
}


def parse_setting(text: str) -> dict[str, Any]:
    setting = dict(DEFAULTS)
    for part in filter(None, text.split(",")):
        key, value = part.split("=", 1)
        if key not in DEFAULTS:
            raise SystemExit(f"unknown setting {key!r}; known: {', '.join(DEFAULTS)}")
        setting[key] = value if key in ("targets", "scheduler") else json.loads(value)
    if setting["alpha"] is None:
        setting["alpha"] = 2 * setting["r"]
    return setting


def held_kl(trainer: Any, model: Any, rows: list[dict[str, Any]], collate: Any, *, top_k: int) -> float:
    """Token-weighted mean whole-vocabulary KL from the prompted base model to ``model`` over ``rows``."""
    import torch

    total, tokens = 0.0, 0
    trainer.top_k = 0
    model.eval()
    with torch.no_grad():
        for row in rows:
            total += float(trainer.compute_loss(model, collate([row]))) * row["answer_len"]
            tokens += row["answer_len"]
    trainer.top_k = top_k
    return total / max(1, tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("skill", type=Path, help="the skill folder (its SKILL.md is the teacher's system prompt)")
    parser.add_argument("dataset", type=Path, help="a distill dataset folder (train.jsonl, held_out.jsonl)")
    parser.add_argument("--setting", action="append", default=[], help="key=value,... (keys: see DEFAULTS)")
    parser.add_argument("--model", default=os.environ.get("SKILL_ADAPTER_MODEL", "smollm2-135m-instruct"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--train-kl", type=int, default=8, help="training examples the fit is measured on")
    args = parser.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import TrainingArguments, set_seed

    from skill_adapter.core.base_models import resolve_model
    from skill_adapter.datasets.distill import read_dataset
    from skill_adapter.training.distill_trainer import KLCollator, KLDistillTrainer, kl_records, teacher_targets
    from skill_adapter.training.model import load_tokenizer
    from skill_adapter.training.teacher import Teacher

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    dataset = read_dataset(args.dataset)
    if dataset is None:
        raise SystemExit(f"no distill dataset in {args.dataset}")
    models_dir = Path(os.environ.get("SKILL_ADAPTER_MODELS_DIR", "models"))
    path = resolve_model(args.model, models_dir).path
    tokenizer = load_tokenizer(path)
    from transformers import AutoModelForCausalLM

    skill_file = args.skill / "SKILL.md"
    held = [e for e in dataset.held_out if e.kind == "task"]
    max_length = 2048
    results = []
    cached_targets: dict[tuple[int, int], Any] = {}  # (top_k, off_skill) -> rows with the teacher's targets
    for text in args.setting or [""]:
        setting = parse_setting(text)
        set_seed(args.seed)
        base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        skill_text = Teacher(
            base, tokenizer, skill_text=skill_file.read_text(encoding="utf-8"), max_new_tokens=128, context=2048
        ).skill_text
        train = [e for e in dataset.train if setting["off_skill"] or e.kind == "task"]
        eval_rows = list(kl_records(held, tokenizer=tokenizer, skill_text=skill_text, max_length=max_length))
        model = get_peft_model(
            base,
            LoraConfig(
                r=int(setting["r"]),
                lora_alpha=float(setting["alpha"]),
                lora_dropout=float(setting["dropout"]),
                target_modules=(
                    setting["targets"] if setting["targets"] == "all-linear" else setting["targets"].split("+")
                ),
                task_type="CAUSAL_LM",
            ),
        )
        started = time.perf_counter()
        rows = list(kl_records(train, tokenizer=tokenizer, skill_text=skill_text, max_length=max_length))
        key = (int(setting["top_k"]), int(setting["off_skill"]))
        if key not in cached_targets:  # the teacher's side does not depend on the setting's adapter
            cached_targets[key] = teacher_targets(model, rows, top_k=key[0]) if key[0] > 0 else rows
        targets = cached_targets[key]
        target_seconds = time.perf_counter() - started
        collate = KLCollator(tokenizer.pad_token_id)

        with tempfile.TemporaryDirectory() as out:
            trainer = KLDistillTrainer(
                model=model,
                args=TrainingArguments(
                    output_dir=out,
                    num_train_epochs=int(setting["epochs"]),
                    per_device_train_batch_size=int(setting["batch"]),
                    gradient_accumulation_steps=int(setting["accumulation"]),
                    learning_rate=float(setting["lr"]),
                    lr_scheduler_type=setting["scheduler"],
                    warmup_steps=float(setting["warmup"]),  # below 1: a fraction of the steps
                    save_strategy="no",
                    logging_strategy="no",
                    report_to="none",
                    use_cpu=True,
                    disable_tqdm=True,
                    remove_unused_columns=False,
                    seed=args.seed,
                    data_seed=args.seed,
                    dataloader_num_workers=0,
                ),
                train_dataset=targets,
                data_collator=collate,
                processing_class=tokenizer,
                top_k=int(setting["top_k"]),
            )
            before = held_kl(trainer, model, eval_rows, collate, top_k=int(setting["top_k"]))
            model.train()
            train_started = time.perf_counter()
            trainer.train()
            train_seconds = time.perf_counter() - train_started
            after = held_kl(trainer, model, eval_rows, collate, top_k=int(setting["top_k"]))
            fit = held_kl(trainer, model, list(rows)[: args.train_kl], collate, top_k=int(setting["top_k"]))
        result = {
            "setting": {k: v for k, v in setting.items() if DEFAULTS.get(k) != v or k in ("epochs", "lr")},
            "train_examples": len(train),
            "held_out_task": len(held),
            "steps": trainer.state.global_step,
            "kl_base": round(before, 4),
            "kl_adapter": round(after, 4),
            "kl_removed": round(1 - after / before, 3) if before > 0 else None,
            "kl_adapter_train": round(fit, 4),  # the same KL on (the first --train-kl) training prompts
            "targets_s": round(target_seconds, 1),
            "train_s": round(train_seconds, 1),
            "load": os.getloadavg()[0],
        }
        results.append(result)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
