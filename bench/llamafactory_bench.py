"""Our trainer against LLaMA-Factory on the same model, data, LoRA rank, sequence length and batch.

    uv run python bench/llamafactory_bench.py [--model smollm2-135m-instruct] [--skill PATH] [--rounds N]

LLaMA-Factory (`llamafactory` from PyPI) is never a dependency of this project: the benchmark installs it
into a virtual environment of its own (``--venv``, default ``bench/.venv-llamafactory``, git-ignored) with
uv on first use, with the same torch version as ours so the kernels compared are the same.

Both sides train in a fresh process of their own, one after the other in ABBA order per round (ours,
theirs, theirs, ours), on:

- the same base model folder (the converted built-in model, or any local folder);
- the same examples: this project's dataset of the skill, written out in LLaMA-Factory's alpaca format,
  rendered with its ``smollm2`` template (ChatML with SmolLM2's default system prompt, as the model's own
  chat template renders it for us), loss on the answer only on both sides;
- LoRA of the same rank, alpha and dropout on every linear projection; the same sequence length, batch,
  epochs, learning rate and seed; no evaluation and no checkpoints during the run.

Reported: training-loop seconds (each trainer's own ``train_runtime``), tokens/s over the same count of
tokens (the examples' tokenised length, identical on both sides), and the process's peak resident memory
(``ru_maxrss`` of that process alone, from ``wait4``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from skill_adapter.core.config import Settings
from skill_adapter.datasets.builder import build_dataset
from skill_adapter.schemas import TrainingParams
from skill_adapter.service import resolve_config
from skill_adapter.skills import load_skill_path

ROOT = Path(__file__).resolve().parents[1]
LLAMAFACTORY = "llamafactory==0.9.5"
DEFAULT_VENV = ROOT / "bench" / ".venv-llamafactory"


def ensure_venv(venv: Path) -> Path:
    """LLaMA-Factory's own virtual environment (created on first use); returns its CLI."""
    cli = venv / "bin" / "llamafactory-cli"
    if cli.exists():
        return cli
    torch_version = torch.__version__.split("+")[0]
    print(f"installing {LLAMAFACTORY} with torch=={torch_version} into {venv} (once)", flush=True)
    subprocess.run(["uv", "venv", "-q", "--python", f"{sys.version_info.major}.{sys.version_info.minor}", str(venv)],
                   check=True)  # fmt: skip
    subprocess.run(
        ["uv", "pip", "install", "-q", "--python", str(venv / "bin" / "python"), LLAMAFACTORY,
         f"torch=={torch_version}"],
        check=True,
    )  # fmt: skip
    return cli


def run_measured(cmd: list[str], *, env: dict[str, str], log: Path) -> tuple[int, float, float]:
    """Run ``cmd``; (exit status, wall seconds, peak RSS in MiB of that process alone)."""
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - started, usage.ru_maxrss / 1024


OURS = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from train_bench import bare_run
config = json.loads(Path(sys.argv[2]).read_text())
result = bare_run(config, Path(sys.argv[3]), Path(sys.argv[4]), evaluate=False)
print("RESULT " + json.dumps(result))
"""


def ours(config: dict[str, Any], skill: Path, work: Path, env: dict[str, str]) -> dict[str, float]:
    work.mkdir(parents=True)
    (work / "config.json").write_text(json.dumps(config))
    log = work / "log.txt"
    cmd = [sys.executable, "-c", OURS, str(ROOT / "bench"), str(work / "config.json"), str(skill), str(work / "out")]
    code, wall, peak = run_measured(cmd, env=env, log=log)
    text = log.read_text(errors="replace")
    if code != 0:
        raise SystemExit(f"our run failed ({code}):\n{text[-3000:]}")
    result = json.loads(text.split("RESULT ", 1)[1].splitlines()[0])
    return {"loop_seconds": result["loop_seconds"], "wall": wall, "peak_mib": peak}


def theirs(cli: Path, config: dict[str, Any], data_dir: Path, work: Path, env: dict[str, str]) -> dict[str, float]:
    work.mkdir(parents=True)
    target = config["target_modules"]
    args = {
        "model_name_or_path": config["model"],
        "trust_remote_code": False,
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_rank": int(config["lora_r"]),
        "lora_alpha": int(config["lora_alpha"]),
        "lora_dropout": float(config["lora_dropout"]),
        "lora_target": "all" if target == "all-linear" else ",".join(target),
        "dataset": "skill",
        "dataset_dir": str(data_dir),
        "template": "smollm2",
        "cutoff_len": int(config["max_seq_length"]),
        "overwrite_cache": True,
        "preprocessing_num_workers": None,
        "output_dir": str(work / "out"),
        "overwrite_output_dir": True,
        "logging_steps": int(config["logging_steps"]),
        "save_strategy": "no",
        "plot_loss": False,
        "report_to": "none",
        "per_device_train_batch_size": int(config["batch_size"]),
        "gradient_accumulation_steps": int(config["gradient_accumulation_steps"]),
        "learning_rate": float(config["learning_rate"]),
        "num_train_epochs": float(config["num_epochs"]),
        "lr_scheduler_type": "linear",
        "warmup_ratio": 0.0,
        "seed": int(config["seed"]),
        "bf16": False,
        "fp16": False,
        "use_cpu": True,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        "disable_gradient_checkpointing": not config.get("gradient_checkpointing", False),
    }
    # YAML: llamafactory 0.9.5 cannot read a JSON config (it passes a Path to json.load)
    (work / "train.yaml").write_text(yaml.safe_dump(args))
    log = work / "log.txt"
    code, wall, peak = run_measured([str(cli), "train", str(work / "train.yaml")], env=env, log=log)
    text = log.read_text(errors="replace")
    if code != 0:
        raise SystemExit(f"LLaMA-Factory failed ({code}):\n{text[-4000:]}")
    results = json.loads((work / "out" / "train_results.json").read_text())
    return {"loop_seconds": float(results["train_runtime"]), "wall": wall, "peak_mib": peak}


def write_alpaca(examples: list[Any], data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    rows = [{"instruction": e.prompt, "input": "", "output": e.completion} for e in examples]
    (data_dir / "skill.json").write_text(json.dumps(rows))
    (data_dir / "dataset_info.json").write_text(json.dumps({"skill": {"file_name": "skill.json"}}))


def token_count(config: dict[str, Any], examples: list[Any]) -> int:
    """Tokens per epoch: each example rendered with the model's chat template (prompt + answer)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config["model"])
    total = 0
    for e in examples:
        record = e.to_record()
        ids = tokenizer.apply_chat_template(record["prompt"] + record["completion"], tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        total += min(len(ids), int(config["max_seq_length"]))
    return total


def main() -> None:
    from train_bench import load_average

    parser = argparse.ArgumentParser()
    parser.add_argument("--skill", type=Path, default=ROOT / "skills" / "commit-messages" / "SKILL.md")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-seq-length", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--gradient-checkpointing",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="recompute activations in the backward pass, on both sides (LLaMA-Factory turns it on unless told "
        "not to; ours is off by default): trades compute for activation memory",
    )
    parser.add_argument(
        "--packing",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="pack our examples into full rows (LLaMA-Factory pads; packing changes the tokens per step and so "
        "the activation memory: off by default, for the same batch on both sides)",
    )
    parser.add_argument("--venv", type=Path, default=Path(os.environ.get("LLAMAFACTORY_VENV", DEFAULT_VENV)))
    args = parser.parse_args()

    base = Settings(_env_file=None, model=args.model)  # type: ignore[call-arg]
    config = resolve_config(
        TrainingParams(num_epochs=args.epochs, batch_size=args.batch_size, gradient_accumulation_steps=1,
                       max_seq_length=args.max_seq_length),
        settings=base,
    )  # fmt: skip
    config["packing"] = args.packing
    config["gradient_checkpointing"] = args.gradient_checkpointing
    from skill_adapter.training.convert import ensure_model

    ensure_model(config["model"], config["base_model"], progress=print)
    cli = ensure_venv(args.venv)
    dataset = build_dataset(load_skill_path(args.skill), seed=int(config["seed"]))
    tokens = token_count(config, dataset.train) * args.epochs
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "CUDA_VISIBLE_DEVICES": "",
           "HF_HUB_OFFLINE": "1", "DISABLE_VERSION_CHECK": "1", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    print(f"load average before: {load_average()}", flush=True)
    mine: list[dict[str, float]] = []
    them: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_alpaca(dataset.train, work / "data")

        def record(rows: list[dict[str, float]], name: str, row: dict[str, float]) -> None:
            rows.append(row)  # each run as it ends, so that a run cut short still leaves its figures
            print(f"  {name}: loop {row['loop_seconds']:.2f} s, process wall {row['wall']:.2f} s, "
                  f"peak RSS {row['peak_mib']:.0f} MiB, load {load_average()}", flush=True)  # fmt: skip

        for r in range(args.rounds):  # ABBA
            record(mine, "ours", ours(config, args.skill, work / f"ours{r}a", env))
            record(them, "LLaMA-Factory", theirs(cli, config, work / "data", work / f"theirs{r}a", env))
            record(them, "LLaMA-Factory", theirs(cli, config, work / "data", work / f"theirs{r}b", env))
            record(mine, "ours", ours(config, args.skill, work / f"ours{r}b", env))
            print(f"round {r + 1}: ours {[round(m['loop_seconds'], 2) for m in mine[-2:]]} s, "
                  f"LLaMA-Factory {[round(t['loop_seconds'], 2) for t in them[-2:]]} s, load {load_average()}",
                  flush=True)  # fmt: skip
    print(f"load average after: {load_average()}")

    def mean(rows: list[dict[str, float]], key: str) -> float:
        return sum(row[key] for row in rows) / len(rows)

    print(f"skill {args.skill.parent.name}, model {Path(config['model']).name}, {len(dataset.train)} examples, "
          f"{args.epochs} epoch(s), batch {args.batch_size}, max_seq_length {args.max_seq_length}, "
          f"LoRA r={config['lora_r']} on {config['target_modules']}, packing {args.packing}, "
          f"gradient checkpointing {args.gradient_checkpointing}, "
          f"{tokens} tokens per run")  # fmt: skip
    for name, rows in (("ours", mine), ("LLaMA-Factory", them)):
        loop = mean(rows, "loop_seconds")
        print(f"{name:14s} {tokens / loop:8.0f} tokens/s   loop {loop:7.2f} s"
              f"   process wall {mean(rows, 'wall'):7.2f} s"
              f"   peak RSS {max(r['peak_mib'] for r in rows):7.0f} MiB")  # fmt: skip
    print(
        f"ours / LLaMA-Factory tokens/s: {mean(them, 'loop_seconds') / mean(mine, 'loop_seconds'):.2f}x; "
        f"peak RSS {max(r['peak_mib'] for r in mine) / max(r['peak_mib'] for r in them):.2f}x"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
