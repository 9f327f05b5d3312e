"""Template vs distill (sft, kl) on the real model: KL to the prompted model on held-out prompts, and time.

For each skill, three jobs run through the service's own pipeline (in this process, one after another):
``template``, ``distill`` with ``kl`` and ``distill`` with ``sft`` (the second distill job reuses the teacher's
cached dataset). All three adapters are then evaluated on the same cases: the held-out prompts of the distill
dataset, with the teacher's answers as the tokens the KL is measured on. Prints one JSON line per skill and a
Markdown table at the end.

    flock /tmp/heavy.lock uv run python bench/distill_bench.py skills/commit-messages ../shared/skills/...
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def run(
    skill_dirs: list[Path],
    *,
    prompts: int,
    new_tokens: int,
    epochs: int,
    lr: float,
    eval_tokens: int,
    arms_wanted: list[str],
    lora_r: int,
    top_k: int,
    data_dir: Path | None = None,
    accumulation: int = 1,
    extra_params: dict[str, Any] | None = None,
    cases_from: Path | None = None,
) -> None:
    from skill_adapter import crud, queued
    from skill_adapter.core.config import Settings
    from skill_adapter.core.db import init_db, session_scope
    from skill_adapter.evaluation.cases import held_out_cases
    from skill_adapter.evaluation.runner import evaluate
    from skill_adapter.pipeline import run_claimed_job
    from skill_adapter.queued import TRAINING
    from skill_adapter.schemas import TrainingParams
    from skill_adapter.service import create_training_job

    tmp = Path(tempfile.mkdtemp(prefix="distill-bench-"))
    root = tmp / "skills"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        model=os.environ.get("SKILL_ADAPTER_MODEL", "smollm2-135m-instruct"),
        models_dir=os.environ.get("SKILL_ADAPTER_MODELS_DIR") or None,
        data_dir=data_dir or tmp / "data",  # a kept data dir reuses the teacher's datasets across runs
        checkpoint_dir=tmp / "checkpoints",
        skills_root=root,
        save_steps=10_000,
    )
    init_db(settings)
    rows = []
    for skill_dir in skill_dirs:
        target = root / skill_dir.name
        shutil.copytree(skill_dir, target)
        common = {
            "num_epochs": epochs,
            "batch_size": 4,
            "gradient_accumulation_steps": accumulation,
            "learning_rate": lr,
            "max_seq_length": 2048,
            "distill_prompts": prompts,
            "teacher_max_new_tokens": new_tokens,
            "lora_r": lora_r,
            "lora_alpha": 2 * lora_r,
            "distill_top_k": top_k,
            **(extra_params or {}),
        }
        all_arms = {
            "distill_kl": {"recipe": "distill", "distill_loss": "kl"},
            "distill_sft": {"recipe": "distill", "distill_loss": "sft"},
            "template": {"recipe": "template"},
        }
        arms = {name: extra for name, extra in all_arms.items() if name in arms_wanted}
        jobs: dict[str, dict[str, Any]] = {}
        for arm, extra in arms.items():
            with session_scope(settings) as session:
                job = create_training_job(
                    session=session,
                    skill_file=target / "SKILL.md",
                    params=TrainingParams.model_validate({**common, **extra}),
                    settings=settings,
                )
                job_id = job.id
                queued.claim(session=session, kind=TRAINING, work_id=job_id, worker_id="bench")
            started = time.perf_counter()
            status = run_claimed_job(job_id, settings=settings, worker_id="bench")
            with session_scope(settings) as session:
                job = crud.get_job(session=session, job_id=job_id)
                jobs[arm] = {
                    "job_id": job_id,
                    "status": status,
                    "seconds": round(time.perf_counter() - started, 1),
                    "adapter": job.adapter_path,
                    "config": dict(job.config),
                    "error": job.error_message,
                    "stats": job.dataset_stats,
                }
            print(f"{skill_dir.name} {arm}: {status} in {jobs[arm]['seconds']} s", file=sys.stderr, flush=True)
        kl_job = jobs.get("distill_kl")
        if kl_job is None and cases_from is None:
            raise SystemExit("without the distill_kl arm, --cases-from names the distill dataset to evaluate on")
        if kl_job is not None and kl_job["status"] != "succeeded":
            rows.append({"skill": skill_dir.name, "error": kl_job["error"], "jobs": jobs})
            print(json.dumps(rows[-1], default=str), flush=True)
            continue
        dataset_dir = cases_from or settings.checkpoint_dir.resolve() / kl_job["job_id"] / "dataset"
        cases = held_out_cases(dataset_dir)
        cases = [c for c in cases if c.generator != "off_skill"]  # held-out *task* prompts
        skill_text = (target / "SKILL.md").read_text(encoding="utf-8")
        result: dict[str, Any] = {
            "skill": skill_dir.name,
            "cases": len(cases),
            "distill": kl_job["stats"].get("distill") if kl_job else str(dataset_dir),
            "arms": {},
        }
        for arm, job in jobs.items():
            if job["status"] != "succeeded":
                result["arms"][arm] = {"status": job["status"], "error": job["error"]}
                continue
            started = time.perf_counter()
            report = evaluate(
                cases,
                config=job["config"],
                adapter_path=Path(job["adapter"]),
                skill_text=skill_text,
                params={"source": "held_out", "max_new_tokens": eval_tokens},
            )
            result["arms"][arm] = {
                "train_seconds": job["seconds"],
                "eval_seconds": round(time.perf_counter() - started, 1),
                "kl_base": report["arms"]["base"]["kl_to_prompted"],
                "kl_adapter": report["arms"]["adapter"]["kl_to_prompted"],
                "kl_reduction": report["internalisation"]["kl_to_prompted"]["ratio"],
                "expectation_pass_rate": report["arms"]["adapter"]["expectation_pass_rate"],
                "train_examples": (job["stats"] or {}).get("train_examples"),
            }
        rows.append(result)
        print(json.dumps(result, default=str), flush=True)
    print("\n| skill | arm | train s | KL base | KL adapter | KL removed |", file=sys.stderr)
    print("|---|---|---|---|---|---|", file=sys.stderr)
    for row in rows:
        for arm, data in row.get("arms", {}).items():
            if "kl_adapter" in data:
                print(
                    f"| {row['skill']} | {arm} | {data['train_seconds']} | {data['kl_base']:.4f} | "
                    f"{data['kl_adapter']:.4f} | {data['kl_reduction']:.1%} |",
                    file=sys.stderr,
                )
    print(f"load average: {os.getloadavg()}", file=sys.stderr)
    print(json.dumps({"load_average_end": os.getloadavg()}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("skills", nargs="+", type=Path, help="skill folders (each with a SKILL.md)")
    parser.add_argument("--prompts", type=int, default=8, help="distill_prompts: prompts the model writes")
    parser.add_argument("--new-tokens", type=int, default=48, help="teacher_max_new_tokens")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--eval-tokens", type=int, default=16, help="new tokens per evaluation answer")
    parser.add_argument(
        "--arms", default="distill_kl,distill_sft,template", help="comma-separated; distill_kl first (or --cases-from)"
    )
    parser.add_argument("--lora-r", type=int, default=16, help="LoRA rank (alpha twice that)")
    parser.add_argument("--top-k", type=int, default=64, help="distill_top_k (0: the whole vocabulary)")
    parser.add_argument("--accumulation", type=int, default=1, help="gradient_accumulation_steps")
    parser.add_argument("--data-dir", type=Path, default=None, help="kept: teacher datasets reused")
    parser.add_argument(
        "--cases-from", type=Path, default=None, help="a distill dataset folder: its held-out cases (one skill)"
    )
    parser.add_argument("--param", action="append", default=[], help="NAME=JSON, any other training parameter")
    args = parser.parse_args()
    run(
        [p.resolve() for p in args.skills],
        prompts=args.prompts,
        new_tokens=args.new_tokens,
        epochs=args.epochs,
        lr=args.learning_rate,
        eval_tokens=args.eval_tokens,
        arms_wanted=args.arms.split(","),
        lora_r=args.lora_r,
        top_k=args.top_k,
        data_dir=args.data_dir.resolve() if args.data_dir else None,
        accumulation=args.accumulation,
        extra_params={k: json.loads(v) for k, v in (p.split("=", 1) for p in args.param)},
        cases_from=args.cases_from.resolve() if args.cases_from else None,
    )


if __name__ == "__main__":
    main()
