"""Issue 15's measurement: a burst of 300 submissions from one key while another key submits one job.

Starts ``skill-adapter serve`` (embedded worker, the tiny model, SQLite) in a temporary folder with two keys,
fires the burst concurrently over HTTP, then waits until the other key's job has started (``--until
succeeded``: has succeeded). Prints the answer counts, the answers' latency, whether every accepted job is
in the database, and when the other key's job started: its place among the jobs started so far and the
seconds from its 202 to its start.

``--scheduling both`` (the default) runs it twice, each on a fresh server: first with workers taking jobs
in arrival order (``SKILL_ADAPTER_FAIR_SCHEDULING=false``, the baseline: the behaviour before fair turns),
then in fair turns across keys (the default), and prints the ratio of the two waits.

    uv run python bench/admission_burst.py [--burst 300] [--concurrency 32] [--max-active 5]

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
        help="SKILL_ADAPTER_MAX_ACTIVE_JOBS_PER_KEY: in arrival order the other key's job waits behind up to "
        "this many of the burst's jobs",
    )
    parser.add_argument("--scheduling", choices=("both", "fifo", "fair"), default="both")
    parser.add_argument(
        "--until",
        choices=("started", "succeeded"),
        default="started",
        help="what to wait for the other key's job to do",
    )
    args = parser.parse_args()
    modes = ("fifo", "fair") if args.scheduling == "both" else (args.scheduling,)
    results = {mode: serve_and_burst(args, fair=mode == "fair") for mode in modes}
    if len(results) == 2 and all(r["start_seconds"] is not None for r in results.values()):
        fifo, fair = results["fifo"], results["fair"]
        print(
            f"the other key's job started {fifo['start_seconds'] / fair['start_seconds']:.1f}x sooner in fair "
            f"turns ({fair['start_seconds']:.0f} s, place {fair['place']}) than in arrival order "
            f"({fifo['start_seconds']:.0f} s, place {fifo['place']})"
        )
    return 0 if all(r["ok"] for r in results.values()) else 1


def serve_and_burst(args: argparse.Namespace, *, fair: bool) -> dict[str, Any]:
    mode = "fair turns" if fair else "arrival order (FIFO)"
    print(f"--- {mode}: {args.burst} from alice + 1 from bob, cap {args.max_active} active per key ---")
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
        SKILL_ADAPTER_FAIR_SCHEDULING="true" if fair else "false",
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
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the service did not start")
            time.sleep(0.3)
        return asyncio.run(run(base, keys, args))
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


async def run(base: str, keys: dict[str, dict[str, str]], args: argparse.Namespace) -> dict[str, Any]:
    limit = asyncio.Semaphore(args.concurrency)
    answers: list[tuple[str, int, float, str, float]] = []

    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def submit(who: str) -> None:
            async with limit:
                started = time.perf_counter()
                answer = await client.post("/api/training/start", json=BODY, headers=keys[who])
                job = answer.json().get("job_id", "") if answer.status_code == 202 else ""
                answers.append((who, answer.status_code, time.perf_counter() - started, job, time.time()))

        order = ["alice"] * args.burst
        order.insert(args.burst // 2, "bob")
        started = time.perf_counter()
        await asyncio.gather(*(submit(who) for who in order))
        burst_seconds = time.perf_counter() - started
        load = os.getloadavg()
        statuses = Counter((who, status) for who, status, _, _, _ in answers)
        latencies = sorted(seconds for _, _, seconds, _, _ in answers)
        print(f"burst: {args.burst} from alice + 1 from bob in {burst_seconds:.2f} s (load {load[0]:.2f})")
        print("answers:", dict(sorted(statuses.items())))
        print(
            f"latency: p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
        )
        accepted = {job: who for who, status, _, job, _ in answers if status == 202}
        listed = {
            j["job_id"]
            for who in keys
            for j in (await client.get("/api/training?limit=200", headers=keys[who])).json()["data"]
        }
        lost = set(accepted) - listed
        print(f"accepted {len(accepted)}, in the database {len(set(accepted) & listed)} (lost: {len(lost)})")
        five_xx = sum(count for (_, status), count in statuses.items() if status >= 500)
        bob_job, bob_accepted_at = next(
            (job, at) for who, status, _, job, at in answers if who == "bob" and status == 202
        )

        async def status_of(job: str) -> dict[str, Any]:
            answer = await client.get(f"/api/training/{job}/status", headers=keys[accepted[job]])
            return answer.json()  # type: ignore[no-any-return]

        waited = time.perf_counter()
        bob: dict[str, Any] = {}
        while time.perf_counter() - waited < args.timeout:
            bob = await status_of(bob_job)
            if bob["status"] in ("succeeded", "failed", "cancelled") or (
                args.until == "started" and bob["started_at"] is not None
            ):
                break
            await asyncio.sleep(1)
        place: int | None = None
        start_seconds: float | None = None
        if bob.get("started_at") is not None:
            bob_start = datetime.fromisoformat(bob["started_at"]).astimezone(UTC)
            start_seconds = bob_start.timestamp() - bob_accepted_at
            others = [await status_of(job) for job, who in accepted.items() if who == "alice"]
            before = sum(
                1
                for other in others
                if other["started_at"] is not None and datetime.fromisoformat(other["started_at"]) < bob_start
            )
            place = before + 1
            print(
                f"bob's job started {start_seconds:.0f} s after its 202, place {place} among the starts "
                f"({before} of alice's {len(others)} accepted jobs started before it; load {os.getloadavg()[0]:.2f})"
            )
        print(f"bob's job {bob_job}: {bob['status']} {time.perf_counter() - waited:.0f} s after the burst")
        reached = bob.get("status") == "succeeded" if args.until == "succeeded" else start_seconds is not None
        ok = five_xx == 0 and set(accepted) <= listed and reached
        print("OK" if ok else "NOT OK")
        return {"ok": ok, "place": place, "start_seconds": start_seconds}


if __name__ == "__main__":
    sys.exit(main())
