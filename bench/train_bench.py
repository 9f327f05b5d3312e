"""Training throughput: the service against a bare TRL script, and packing against padding.

    uv run python bench/train_bench.py [--skill PATH] [--epochs N] [--model DIR] [--rounds N]
    uv run python bench/train_bench.py --model smollm2-135m-instruct --skill skills/commit-messages/SKILL.md \
        --epochs 1 --max-seq-length 512     # the real default model, a few steps

1. The same model, data and settings trained (a) by a bare `SFTTrainer` script in a fresh process and
   (b) as a job through the whole service path (job row, claim, child process, callbacks writing every
   step to the database, checkpoints). Reported: training-loop tokens/s of each and their ratio, and the
   job's whole wall time (start-up included) beside the bare loop's.
2. Useful (non-padding) tokens/s with packing against without, on a real skill's dataset.
3. Where the job's start-up goes (submit -> first optimizer step), from the time stamps of the job's own
   log lines and its first metric point.

Each pair runs in ABBA order per round (baseline, ours, ours, baseline), so a load that drifts linearly
during the run costs both sides the same; the load average is printed before and after.

Defaults use the embedded tiny model on the CPU; pass --model smollm2-135m-instruct (or a folder) for a real one.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from skill_adapter import crud
from skill_adapter.core.config import Settings
from skill_adapter.core.db import init_db, session_scope
from skill_adapter.datasets.builder import build_dataset
from skill_adapter.pipeline import execute_job
from skill_adapter.schemas import TrainingParams
from skill_adapter.service import create_training_job, resolve_config
from skill_adapter.skills import load_skill_path

DEFAULT_SKILL = Path(__file__).resolve().parents[2] / "shared" / "skills" / "anthropics" / "claude-api" / "SKILL.md"


def bare_run(config: dict[str, Any], skill_file: Path, out: Path, *, evaluate: bool = True) -> dict[str, float]:
    """The least a training script does: load, wrap with LoRA, SFTTrainer.train(), with the job's own
    settings (validation loss and a checkpoint every epoch). No database, no child process, no callbacks."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    from skill_adapter.training.hardware import detect_hardware
    from skill_adapter.training.model import lora_config
    from skill_adapter.training.trainer import records, sft_config

    dataset = build_dataset(load_skill_path(skill_file), seed=int(config["seed"]))
    hardware = detect_hardware()
    has_eval = bool(dataset.held_out) and evaluate
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(config["model"], dtype=hardware.dtype)
    trainer = SFTTrainer(
        model=model,
        args=sft_config(config, output_dir=out, has_eval=has_eval, cuda=hardware.cuda, bf16=hardware.bf16),
        train_dataset=records(dataset.train),
        eval_dataset=records(dataset.held_out) if has_eval else None,
        processing_class=AutoTokenizer.from_pretrained(config["model"]),
        peft_config=lora_config(config),
    )
    trainer.args.save_strategy = "epoch" if evaluate else "no"
    useful = _useful_tokens(trainer) * int(config["num_epochs"])
    output = trainer.train()
    wall = time.perf_counter() - started
    runtime = output.metrics["train_runtime"]
    return {"tokens_per_second": trainer.state.num_input_tokens_seen / runtime if trainer.state.num_input_tokens_seen
            else useful / runtime, "useful_per_second": useful / runtime, "loop_seconds": runtime, "wall": wall,
            "useful_tokens": useful}  # fmt: skip


def _useful_tokens(trainer: Any) -> int:
    return sum(len(ids) for ids in trainer.train_dataset["input_ids"])


def service_run(config: dict[str, Any], skill_file: Path, root: Path) -> dict[str, float]:
    """The same job through the service: job row, claim, training child process, DB callbacks."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=root / "data",
        checkpoint_dir=root / "checkpoints",
        skills_root=skill_file.parent,
        model=config["model"],
        save_steps=10**6,
    )
    init_db(settings)
    params = {k: v for k, v in config.items() if k in TrainingParams.model_fields and k != "target_modules"}
    with session_scope(settings) as session:
        job = create_training_job(
            session=session, skill_file=skill_file, params=TrainingParams.model_validate(params), settings=settings
        )
        job_id = job.id
    started = time.perf_counter()
    status = execute_job(job_id, settings=settings)
    wall = time.perf_counter() - started
    assert status == "succeeded", status
    with session_scope(settings) as session:
        points = crud.read_metrics(session=session, job_id=job_id, after=0, limit=100_000)
        job = crud.get_job(session=session, job_id=job_id)
    # elapsed_seconds runs from on_train_begin, as the bare run's train_runtime does
    loop = max(p.elapsed_seconds or 0.0 for p in points)
    return {"wall": wall, "loop_seconds": loop, "steps": job.step, "startup": startup_phases(settings, job_id)}


STARTUP_MARKS = [  # (phase, the log line that ends it); the phases run in this order in the job
    ("claim", "claimed by worker"),
    ("training process start (spawn, our imports)", "parsing "),
    ("skill parse, dataset build and token stats", "importing torch"),
    ("import torch, transformers, PEFT, TRL", "loading "),
    ("model load and LoRA", "building the trainer"),
    ("trainer construction (tokenising the dataset)", "training "),
]


def startup_phases(settings: Settings, job_id: str) -> list[tuple[str, float]]:
    """Seconds per start-up phase, from submit (the job row's creation) to the first optimizer step
    (the first metric point, logged at step 1)."""
    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
        lines = crud.read_logs(session=session, job_id=job_id, after=0, limit=100_000)
        points = crud.read_metrics(session=session, job_id=job_id, after=0, limit=100_000)
        start = job.created_at
        marks = [(line.message, line.ts) for line in lines]
        first_step = min(p.ts for p in points if p.loss is not None)
    phases: list[tuple[str, float]] = []
    previous = start
    for phase, prefix in STARTUP_MARKS:
        ts = next((t for message, t in marks if message.startswith(prefix) and t >= previous), None)
        if ts is None:
            continue
        phases.append((phase, (ts - previous).total_seconds()))
        previous = ts
    phases.append(("first optimizer step", (first_step - previous).total_seconds()))
    return phases


def fresh(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` in a new process of its own, as the service runs each job: a second run in a warm process
    skips the first step's one-off costs (kernel set-up, allocator growth: ~15 s of 55 on the real model) and
    would flatter whichever side ran warm."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "n/a"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def packing_run(config: dict[str, Any], skill_file: Path, out: Path, packing: bool) -> dict[str, float]:
    if packing and os.environ.get("PACK_ROWS_PER_STEP"):
        config = {**config, "batch_size": 1, "gradient_accumulation_steps": int(config["batch_size"])}
    return fresh(bare_run, {**config, "packing": packing}, skill_file, out, evaluate=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skill", type=Path, default=DEFAULT_SKILL)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", default="tiny", help="a built-in name (tiny, smollm2-135m-instruct), folder or id")
    parser.add_argument("--max-seq-length", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=1, help="ABBA rounds per comparison (each runs both twice)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["service", "packing"], help="comparisons to skip")
    args = parser.parse_args()

    base = Settings(_env_file=None, model=args.model)  # type: ignore[call-arg]
    config = resolve_config(
        TrainingParams(
            num_epochs=args.epochs,
            batch_size=args.batch_size,
            gradient_accumulation_steps=1,
            max_seq_length=args.max_seq_length,
        ),
        settings=base,
    )
    from skill_adapter.training.convert import ensure_model

    ensure_model(config["model"], config["base_model"], progress=print)  # a built-in GGUF model: converted once
    print(f"load average before: {load_average()}", flush=True)
    bares: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    padded: list[dict[str, Any]] = []
    packed: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        for r in range(args.rounds):
            if "service" not in args.skip:  # ABBA: bare, service, service, bare
                bares.append(fresh(bare_run, config, args.skill, tmp_path / f"bare{r}a"))
                services.append(service_run(config, args.skill, tmp_path / f"service{r}a"))
                services.append(service_run(config, args.skill, tmp_path / f"service{r}b"))
                bares.append(fresh(bare_run, config, args.skill, tmp_path / f"bare{r}b"))
                print(f"round {r + 1}: service loop {[round(s['loop_seconds'], 2) for s in services[-2:]]} s, "
                      f"bare loop {[round(b['loop_seconds'], 2) for b in bares[-2:]]} s, "
                      f"load {load_average()}", flush=True)  # fmt: skip
            if "packing" not in args.skip:  # ABBA: padded, packed, packed, padded
                padded.append(packing_run(config, args.skill, tmp_path / f"padded{r}a", packing=False))
                packed.append(packing_run(config, args.skill, tmp_path / f"packed{r}a", packing=True))
                packed.append(packing_run(config, args.skill, tmp_path / f"packed{r}b", packing=True))
                padded.append(packing_run(config, args.skill, tmp_path / f"padded{r}b", packing=False))
    print(f"load average after: {load_average()}")

    print(
        f"skill {args.skill.parent.name}, model {Path(args.model).name}, {args.epochs} epochs, "
        f"batch {args.batch_size}, max_seq_length {args.max_seq_length}, {args.rounds} ABBA round(s)"
    )
    if bares:
        bare_loop = _mean([b["loop_seconds"] for b in bares])
        service_loop = _mean([s["loop_seconds"] for s in services])
        useful = bares[0]["useful_tokens"]
        print(f"bare TRL loop:     {useful / bare_loop:9.0f} tokens/s   loop {bare_loop:6.2f} s   "
              f"wall {_mean([b['wall'] for b in bares]):6.2f} s")  # fmt: skip
        print(f"service job loop:  {useful / service_loop:9.0f} tokens/s   loop {service_loop:6.2f} s   "
              f"wall {_mean([s['wall'] for s in services]):6.2f} s (claim, child process start, model load, "
              "dataset, checkpoints)")  # fmt: skip
        print(f"service overhead in the loop: {100 * (service_loop / bare_loop - 1):+.1f}%")
        print("start-up, submit -> first optimizer step (mean of the service runs):")
        names = [name for name, _ in services[0]["startup"]]
        for name in names:
            seconds = _mean([dict(s["startup"]).get(name, 0.0) for s in services])
            print(f"  {name:50s} {seconds:6.2f} s")
        total = _mean([sum(sec for _, sec in s["startup"]) for s in services])
        print(f"  {'total':50s} {total:6.2f} s")
    if padded:
        pad = _mean([p["useful_per_second"] for p in padded])
        pack = _mean([p["useful_per_second"] for p in packed])
        print(f"padded:  {pad:9.0f} useful tokens/s   loop {_mean([p['loop_seconds'] for p in padded]):6.2f} s")
        print(f"packed:  {pack:9.0f} useful tokens/s   loop {_mean([p['loop_seconds'] for p in packed]):6.2f} s")
        print(f"packing speed-up: {pack / pad:.2f}x")


if __name__ == "__main__":
    main()
