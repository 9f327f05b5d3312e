"""Jobs accepted per second, and ``/status`` latency at a fixed request rate while a job trains.

Runs the real service as separate processes (``serve --no-worker`` and ``skill-adapter worker``) on two
setups, side by side:

* **embedded**: SQLite + the filesystem broker in a temporary data folder;
* **services**: Postgres (a database of its own on 127.0.0.1:5432, user postgres) + a private
  ``redis-server`` on a free port.

For each: the API takes ``--submissions`` POSTs through ``--concurrency`` keep-alive connections,
``--rounds`` times (accepted/s = 202s / wall time, the median of the rounds), and those jobs are
cancelled. Then ``GET /status`` is sent open loop at ``--rate`` requests/s for ``--duration`` seconds,
first with no worker (the baseline), then while a worker trains a long job. Latency runs from each
request's scheduled send time, so a stalled server cannot hide behind a slowed client.

    uv run python bench/status_bench.py                      # both setups, 200 req/s for 20 s
    uv run python bench/status_bench.py --setups embedded --rate 100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
QUICK_JOB = {"skill_path": "commit-messages/SKILL.md", "num_epochs": 1}
LONG_JOB = {
    "skill_path": "commit-messages/SKILL.md",
    "num_epochs": 50,
    "batch_size": 1,
    "gradient_accumulation_steps": 1,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load() -> str:
    """The 1, 5 and 15 minute load averages (the machine may be shared)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class Stack:
    """The processes of one setup, in a temporary folder that is removed afterwards."""

    def __init__(self, setup: str, work: Path) -> None:
        self.setup, self.work = setup, work
        self.procs: list[subprocess.Popen[bytes]] = []
        self.db_name: str | None = None
        shutil.copytree(REPO / "skills", work / "skills")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SKILL_ADAPTER_")}
        self.env.update(
            SKILL_ADAPTER_MODEL="tiny",
            SKILL_ADAPTER_DATA_DIR=str(work / "data"),
            SKILL_ADAPTER_CHECKPOINT_DIR=str(work / "checkpoints"),
            SKILL_ADAPTER_SKILLS_ROOT=str(work / "skills"),
            CUDA_VISIBLE_DEVICES="",
            HF_HUB_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
        )
        if setup == "services":
            redis_port = free_port()
            self._spawn(
                ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                "redis",
            )
            self.db_name = f"skill_adapter_bench_{uuid.uuid4().hex[:8]}"
            self._pg_admin(f'CREATE DATABASE "{self.db_name}"')
            self.env["SKILL_ADAPTER_BROKER_URL"] = f"redis://127.0.0.1:{redis_port}/0"
            self.env["SKILL_ADAPTER_DATABASE_URL"] = (
                f"postgresql+psycopg://{PG['user']}@{PG['host']}:{PG['port']}/{self.db_name}"
            )
            subprocess.run([sys.executable, "-m", "skill_adapter.cli", "db", "upgrade"], env=self.env, check=True)
        self.base = ""

    def _pg_admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:  # type: ignore[arg-type]
            conn.execute(sql)  # type: ignore[arg-type]

    def _spawn(self, cmd: list[str], name: str) -> subprocess.Popen[bytes]:
        log = (self.work / f"{name}.log").open("ab")
        proc = subprocess.Popen(cmd, env=self.env, cwd=self.work, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        self.procs.append(proc)
        return proc

    def start_api(self) -> None:
        port = free_port()
        self._spawn([sys.executable, "-m", "skill_adapter.cli", "serve", "--no-worker", "--port", str(port)], "api")
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base}/api/config", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"API did not start; see {self.work / 'api.log'}")

    def start_worker(self) -> None:
        self._spawn([sys.executable, "-m", "skill_adapter.cli", "worker", "--name", "bench@%h"], "worker")

    def close(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.db_name:
            self._pg_admin(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')


@contextlib.contextmanager
def stack(setup: str) -> Iterator[Stack]:
    work = Path(tempfile.mkdtemp(prefix=f"status-bench-{setup}-"))
    s = Stack(setup, work)
    try:
        yield s
    except BaseException:
        print(f"{setup}: failed; the processes' logs are kept in {work}", file=sys.stderr)
        s.close()
        raise
    s.close()
    shutil.rmtree(work, ignore_errors=True)


class RawConnection:
    """One keep-alive HTTP/1.1 connection: a load generator costs a few microseconds per request this way,
    where httpx costs about a millisecond and, on two busy cores, becomes the bottleneck it measures."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, base: str) -> RawConnection:
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer, f"{host}:{port}")

    async def get(self, path: str) -> tuple[int, bytes]:
        return await self.request("GET", path)

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        answer = await self.reader.readuntil(b"\r\n\r\n")
        status = int(answer.split(b" ", 2)[1])
        length = 0
        for line in answer.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def submit_all(base: str, n: int, concurrency: int) -> tuple[float, list[str], dict[int, int]]:
    """``n`` POSTs through ``concurrency`` connections; then cancels what was accepted (untimed)."""
    conns = [await RawConnection.open(base) for _ in range(concurrency)]
    body = json.dumps(QUICK_JOB).encode()
    answers: list[tuple[int, bytes]] = []

    async def drive(conn: RawConnection, count: int) -> None:
        for _ in range(count):
            answers.append(await conn.request("POST", "/api/training/start", body))

    started = time.perf_counter()
    await asyncio.gather(*(drive(c, n // concurrency + (i < n % concurrency)) for i, c in enumerate(conns)))
    wall = time.perf_counter() - started
    ids = [json.loads(raw)["job_id"] for code, raw in answers if code == 202]
    codes: dict[int, int] = {}
    for code, _ in answers:
        codes[code] = codes.get(code, 0) + 1
    for i, job_id in enumerate(ids):
        await conns[i % concurrency].request("POST", f"/api/training/{job_id}/cancel", b"")
    for conn in conns:
        conn.close()
    return wall, ids, codes


async def status_load(base: str, job_id: str, rate: float, duration: float, connections: int = 32) -> dict[str, Any]:
    """Open loop: request i is due at t0 + i/rate whatever happened to the earlier ones; its latency runs
    from that moment (time spent waiting for a free connection counts)."""
    path = f"/api/training/{job_id}/status"
    pool: asyncio.Queue[RawConnection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await RawConnection.open(base))
    latencies: list[float] = []
    lags: list[float] = []
    errors: dict[str, int] = {}

    async def one(due: float) -> None:
        conn = await pool.get()
        lags.append(time.perf_counter() - due)
        try:
            status, _ = await conn.get(path)
            key = str(status)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            key = type(exc).__name__
            conn.close()
            conn = await RawConnection.open(base)
        pool.put_nowait(conn)
        if key == "200":
            latencies.append(time.perf_counter() - due)
        else:
            errors[key] = errors.get(key, 0) + 1

    probe = await RawConnection.open(base)
    first = json.loads((await probe.get(path))[1])
    total = int(rate * duration)
    tasks = []
    t0 = time.perf_counter() + 0.1
    for i in range(total):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    probe.close()
    probe = await RawConnection.open(base)  # the server closes a connection idle for 5 s
    last = json.loads((await probe.get(path))[1])
    probe.close()
    while not pool.empty():
        pool.get_nowait().close()
    ms = sorted(x * 1000 for x in latencies)
    lags.sort()

    def pct(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")

    return {
        "requests": total,
        "ok": len(ms),
        "errors": errors,
        "achieved_rate": round(len(ms) / elapsed, 1),
        "p50_ms": round(pct(ms, 50), 2),
        "p90_ms": round(pct(ms, 90), 2),
        "p99_ms": round(pct(ms, 99), 2),
        "max_ms": round(ms[-1], 2) if ms else None,
        "mean_ms": round(statistics.fmean(ms), 2) if ms else None,
        "client_lag_p99_ms": round(pct(lags, 99) * 1000, 2),  # how late the client itself sent
        "training_steps_during_load": last["step"] - first["step"],
        "job_status_after": last["status"],
    }


def run_setup(setup: str, args: argparse.Namespace) -> dict[str, Any]:
    with stack(setup) as s:
        s.start_api()
        # Warm-up: the first requests import lazily and open connections.
        asyncio.run(submit_all(s.base, 5, 5))
        rounds = [asyncio.run(submit_all(s.base, args.submissions, args.concurrency)) for _ in range(args.rounds)]
        rates = sorted(len(ids) / wall for wall, ids, _ in rounds)
        answers: dict[int, int] = {}
        for _, _, codes in rounds:
            for code, count in codes.items():
                answers[code] = answers.get(code, 0) + count
        result: dict[str, Any] = {
            "setup": setup,
            "answers": answers,
            "accepted_per_s_rounds": [round(r, 1) for r in rates],
            "accepted_per_s": round(statistics.median(rates), 1),
        }
        job_id = httpx.post(f"{s.base}/api/training/start", json=LONG_JOB, timeout=30).json()["job_id"]
        # Baseline: the same load with no worker (the job waits in the queue).
        result["idle"] = asyncio.run(status_load(s.base, job_id, args.rate, args.duration))
        s.start_worker()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            status = httpx.get(f"{s.base}/api/training/{job_id}/status", timeout=30).json()
            if status["status"] == "running" and status["step"] >= 5:
                break
            if status["status"] in ("succeeded", "failed", "cancelled"):
                raise RuntimeError(f"the training job ended before the load: {status}")
            time.sleep(0.5)
        else:
            raise RuntimeError("the training job never got under way")
        result["load_before"] = load()
        result["status"] = asyncio.run(status_load(s.base, job_id, args.rate, args.duration))
        result["load_after"] = load()
        httpx.post(f"{s.base}/api/training/{job_id}/cancel", timeout=10)
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setups", default="embedded,services")
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16, help="client connections while submitting")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of submissions (the median is shown)")
    parser.add_argument("--rate", type=float, default=200.0, help="GET /status requests per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of /status load")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    results = [run_setup(setup, args) for setup in args.setups.split(",")]
    print(f"\n/status at {args.rate:g} req/s for {args.duration:g} s; {os.cpu_count()} CPUs")
    print(
        "| setup | accepted/s | worker | p50 ms | p90 ms | p99 ms | max ms | req/s | client lag p99 | errors | load |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|")
    for r in results:
        for label, st in (("idle (job queued)", r["idle"]), ("training", r["status"])):
            print(
                f"| {r['setup']} | {r['accepted_per_s']} | {label} | {st['p50_ms']} | {st['p90_ms']} | "
                f"{st['p99_ms']} | {st['max_ms']} | {st['achieved_rate']} | {st['client_lag_p99_ms']} | "
                f"{st['errors'] or 0} | {r['load_before']} |"
            )
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
