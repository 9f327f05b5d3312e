"""Issue 15's measurement: a burst of 300 submissions from one key while another key submits one job.

Starts ``skill-adapter serve`` (embedded worker, the tiny model, SQLite) in a temporary folder with two keys,
fires the burst concurrently over HTTP, then waits until the other key's job has succeeded. Prints the answer
counts, the answers' latency, and whether every accepted job is in the database and ran or is queued.

    uv run python bench/admission_burst.py [--burst 300] [--concurrency 32]

Timings depend on the machine's load: the script prints ``os.getloadavg()`` beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
BODY = {"skill_path": "commit-messages/SKILL.md", "num_epochs": 1, "batch_size": 8, "gradient_accumulation_steps": 1}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the other key's job")
    parser.add_argument(
        "--max-active",
        type=int,
        default=20,
        help="SKILL_ADAPTER_MAX_ACTIVE_JOBS_PER_KEY (one worker runs the "
        "burst's accepted jobs first, in order: the other key's job waits for at most this many)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="admission-burst-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILL_ADAPTER_")}
    env.update(
        SKILL_ADAPTER_MODEL="tiny",
        SKILL_ADAPTER_DATA_DIR=str(work / "data"),
        SKILL_ADAPTER_CHECKPOINT_DIR=str(work / "checkpoints"),
        SKILL_ADAPTER_SKILLS_ROOT=str(REPO / "skills"),
        CUDA_VISIBLE_DEVICES="",
        HF_HUB_OFFLINE="1",
        SKILL_ADAPTER_MAX_ACTIVE_JOBS_PER_KEY=str(args.max_active),
    )
    cli = [sys.executable, "-m", "skill_adapter.cli"]

    def make_key(name: str) -> str:
        out = subprocess.run([*cli, "keys", "create", name], env=env, cwd=work, capture_output=True, text=True)
        return out.stdout.strip().splitlines()[-1]

    keys = {name: {"Authorization": f"Bearer {make_key(name)}"} for name in ("alice", "bob")}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port)], env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the service did not start")
            time.sleep(0.3)
        return asyncio.run(run(base, keys, args)) if server.poll() is None else 1
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


async def run(base: str, keys: dict[str, dict[str, str]], args: argparse.Namespace) -> int:
    limit = asyncio.Semaphore(args.concurrency)
    answers: list[tuple[str, int, float, str]] = []

    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def submit(who: str) -> None:
            async with limit:
                started = time.perf_counter()
                answer = await client.post("/api/training/start", json=BODY, headers=keys[who])
                job = answer.json().get("job_id", "") if answer.status_code == 202 else ""
                answers.append((who, answer.status_code, time.perf_counter() - started, job))

        order = ["alice"] * args.burst
        order.insert(args.burst // 2, "bob")
        started = time.perf_counter()
        await asyncio.gather(*(submit(who) for who in order))
        burst_seconds = time.perf_counter() - started
        load = os.getloadavg()
        statuses = Counter((who, status) for who, status, _, _ in answers)
        latencies = sorted(seconds for _, _, seconds, _ in answers)
        print(f"burst: {args.burst} from alice + 1 from bob in {burst_seconds:.2f} s (load {load[0]:.2f})")
        print("answers:", dict(sorted(statuses.items())))
        print(
            f"latency: p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
        )
        accepted = {job for _, status, _, job in answers if status == 202}
        listed = {
            j["job_id"]
            for who in keys
            for j in (await client.get("/api/training?limit=200", headers=keys[who])).json()["data"]
        }
        print(f"accepted {len(accepted)}, in the database {len(accepted & listed)} (lost: {len(accepted - listed)})")
        five_xx = sum(count for (_, status), count in statuses.items() if status >= 500)
        bob_job = next(job for who, status, _, job in answers if who == "bob" and status == 202)
        waited = time.perf_counter()
        status = ""
        while time.perf_counter() - waited < args.timeout:
            status = (await client.get(f"/api/training/{bob_job}/status", headers=keys["bob"])).json()["status"]
            if status in ("succeeded", "failed", "cancelled"):
                break
            await asyncio.sleep(1)
        print(
            f"bob's job {bob_job}: {status} {time.perf_counter() - waited:.0f} s after the burst "
            f"(load {os.getloadavg()[0]:.2f})"
        )
        ok = five_xx == 0 and accepted <= listed and status == "succeeded"
        print("OK" if ok else "NOT OK")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
