"""Serving under load: tokens/s and time to first token for 1, 4 and 16 concurrent chats, and the API's
``/status`` latency while those chats run, against idle.

Runs ``skill-adapter serve --no-worker`` as users do (the API plus its model server process) on the real
default model (``smollm2-135m-instruct``, converted once into ``--models-dir``), with one LoRA adapter
(r=16 on every linear layer, random weights: the same compute as a trained one) registered as a
succeeded job. Each chat streams ``--max-tokens`` new tokens through the API's ``/v1`` with the official
wire format (with ``logprobs``, so that every token is a chunk); time to first token (TTFT) runs from the
request to its first chunk of visible text, ``first_token`` to its first token (the random adapter's first
tokens are often empty text). ``/status`` is polled
sequentially, first with nothing running (the baseline), then during the 16-chat round; the ratio of the
two p50s is the figure (absolute times move with the machine's load, printed beside them).

    flock /tmp/heavy.lock uv run python bench/serve_bench.py --models-dir /tmp/sa-models
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m-instruct"
PROMPT = "Write a git commit message for: fix the login redirect loop when the session cookie expires."


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_adapter(base: str, out: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
        LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM"),
    )
    model.save_pretrained(str(out))


def register(env: dict[str, str], adapter: Path, skill: Path) -> None:
    code = (
        "from skill_adapter import crud; from skill_adapter.core.config import load_settings;"
        "from skill_adapter.core.db import init_db, session_scope; s = load_settings(); init_db(s)\n"
        "with session_scope(s) as session:\n"
        f"    job = crud.create_job(session=session, job_id='train-bench', skill_path={str(skill)!r},"
        " skill_name='commit-messages', config={'num_epochs': 1})\n"
        f"    job.status, job.adapter_path = 'succeeded', {str(adapter)!r}\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def chat(client: httpx.AsyncClient, api: str, model: str, max_tokens: int) -> dict[str, float]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        # One chunk per token (its logprob), so the first token is timed even when it is not visible text.
        "logprobs": True,
    }
    started = time.perf_counter()
    first = first_token = None
    tokens = 0
    async with client.stream("POST", f"{api}/v1/chat/completions", json=body) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
                continue
            choice = chunk["choices"][0] if chunk["choices"] else {}
            if first_token is None and (choice.get("logprobs") or {}).get("content"):
                first_token = time.perf_counter() - started
            if first is None and choice.get("delta", {}).get("content"):
                first = time.perf_counter() - started
    return {
        "ttft": first or float("nan"),
        "first_token": first_token or float("nan"),
        "seconds": time.perf_counter() - started,
        "tokens": tokens,
    }


async def poll_status(client: httpx.AsyncClient, url: str, stop: asyncio.Event) -> list[float]:
    times = []
    while not stop.is_set():
        started = time.perf_counter()
        response = await client.get(url)
        assert response.status_code == 200
        times.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.05)
    return times


async def run(api: str, args: argparse.Namespace) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=64)
    load_before = [round(x, 2) for x in os.getloadavg()]
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        start = await client.post(f"{api}/api/training/start", json={"skill_path": "commit-messages/SKILL.md"})
        status_url = f"{api}/api/training/{start.json()['job_id']}/status"
        t = time.perf_counter()
        await chat(client, api, "train-bench", 4)  # loads the base model and the adapter
        load_seconds = time.perf_counter() - t

        stop = asyncio.Event()
        idle_task = asyncio.create_task(poll_status(client, status_url, stop))
        await asyncio.sleep(args.idle_seconds)
        stop.set()
        idle = await idle_task

        rounds = {}
        busy: list[float] = []
        for concurrency in args.concurrency:
            stop = asyncio.Event()
            poller = asyncio.create_task(poll_status(client, status_url, stop))
            t = time.perf_counter()
            results = await asyncio.gather(
                *(chat(client, api, "train-bench", args.max_tokens) for _ in range(concurrency))
            )
            wall = time.perf_counter() - t
            stop.set()
            during = await poller
            if concurrency == max(args.concurrency):
                busy = during
            tokens = sum(r["tokens"] for r in results)
            rounds[concurrency] = {
                "tokens": tokens,
                "wall_s": round(wall, 2),
                "tokens_per_s": round(tokens / wall, 1),
                "per_chat_tokens_per_s": round(statistics.median(r["tokens"] / r["seconds"] for r in results), 1),
                "ttft_p50_ms": round(pct([r["ttft"] for r in results], 50) * 1000),
                "ttft_max_ms": round(max(r["ttft"] for r in results) * 1000),
                "first_token_p50_ms": round(pct([r["first_token"] for r in results], 50) * 1000),
                "first_token_max_ms": round(max(r["first_token"] for r in results) * 1000),
                "status_p50_ms": round(pct(during, 50), 1),
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            }
            print(f"{concurrency:>3} chats: {json.dumps(rounds[concurrency])}", flush=True)
    return {
        "first_request_s (loads model + adapter)": round(load_seconds, 1),
        "rounds": rounds,
        "status_idle": {"n": len(idle), "p50_ms": round(pct(idle, 50), 1), "p99_ms": round(pct(idle, 99), 1)},
        "status_during_16": {"n": len(busy), "p50_ms": round(pct(busy, 50), 1), "p99_ms": round(pct(busy, 99), 1)},
        "status_p50_ratio": round(pct(busy, 50) / pct(idle, 50), 2),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=os.environ.get("SKILL_ADAPTER_MODELS_DIR", ".skill-adapter/models"))
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    args = parser.parse_args()

    from skill_adapter.core.base_models import converted_folder
    from skill_adapter.training.convert import ensure_model

    models_dir = Path(args.models_dir).resolve()
    base = str(converted_folder(MODEL, models_dir))
    ensure_model(base, MODEL)
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        work = Path(tmp)
        make_adapter(base, work / "adapter")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKILL_ADAPTER_")}
        env.update(
            SKILL_ADAPTER_MODEL=MODEL,
            SKILL_ADAPTER_MODELS_DIR=str(models_dir),
            SKILL_ADAPTER_DATA_DIR=str(work / "data"),
            SKILL_ADAPTER_CHECKPOINT_DIR=str(work / "ck"),
            SKILL_ADAPTER_SKILLS_ROOT=str(REPO / "skills"),
            SKILL_ADAPTER_SERVING_QUEUE_SIZE="64",
            CUDA_VISIBLE_DEVICES=os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            HF_HUB_OFFLINE="1",
        )
        register(env, work / "adapter", REPO / "skills" / "commit-messages" / "SKILL.md")
        port = free_port()
        cmd = [sys.executable, "-m", "skill_adapter.cli", "serve", "--no-worker", "--port", str(port)]
        proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        api = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{api}/v1/models", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, "the service did not start"
                time.sleep(0.5)
            result = asyncio.run(run(api, args))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
