"""Jobs accepted per second, and ``/status`` latency at a fixed request rate while a job trains.

Runs the real service as separate processes (``serve --no-worker`` and ``skill-adapter worker``) on two
setups, side by side:

* **embedded**: SQLite + the filesystem broker in a temporary data folder;
* **services**: Postgres (a database of its own on 127.0.0.1:5432, user postgres) + a private
  ``redis-server`` on a free port.

For each: the API takes ``--submissions`` POSTs through ``--concurrency`` keep-alive connections,
``--rounds`` times (accepted/s = 202s / wall time, the median of the rounds), and those jobs are
cancelled. Then ``GET /status`` is sent open loop at ``--rate`` requests/s, first with no worker (the job
waits in the queue), then while a worker trains a long job on the tiny model. Latency runs from each
request's scheduled send time, so a stalled server cannot hide behind a slowed client.

The **control** is a sync FastAPI endpoint without a database (``GET /bench/control``), registered by this
script on the same app, served the same way (``run_server``, as ``skill-adapter serve`` does) and driven by
the same client at the same rate. Each run alternates ``--block``-second blocks of control and ``/status``
requests, so both see the same moments of a shared machine; ``--runs`` runs per condition give the spread
of p99 (min / median / max) and the ratio of ``/status`` p99 to the control's p99 in the same run.

    uv run python bench/status_bench.py                      # both setups, 5 runs of 10 s + 10 s, 200 req/s
    uv run python bench/status_bench.py --setups embedded --runs 3 --rate 100
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

from skill_adapter.assets import TINY_MODEL_DIR

REPO = Path(__file__).resolve().parents[1]
CONTROL_PATH = "/bench/control"
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
            SKILL_ADAPTER_DATA_DIR=str(work / "data"),
            SKILL_ADAPTER_CHECKPOINT_DIR=str(work / "checkpoints"),
            SKILL_ADAPTER_SKILLS_ROOT=str(work / "skills"),
            # The tiny model by its folder (the built-in name `tiny` means the same; the folder also works on
            # code older than the name), so the figures compare with earlier ones.
            SKILL_ADAPTER_MODEL=str(TINY_MODEL_DIR),
            CUDA_VISIBLE_DEVICES="",
            HF_HUB_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            # Admission control (docs/security.md) stays on, with limits above what the benchmark submits: its
            # queries are part of every submission's cost, its 429s would end the measurement.
            SKILL_ADAPTER_MAX_ACTIVE_JOBS_PER_KEY="1000000",
            SKILL_ADAPTER_SUBMISSIONS_PER_MINUTE="1000000",
            SKILL_ADAPTER_MAX_QUEUE_DEPTH="1000000",
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
        self._spawn([sys.executable, __file__, "--serve-api", str(port)], "api")
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
    for conn in conns:
        conn.close()
    # Fresh connections for the cancels: on a busy machine a connection that finished its share early can
    # outlive the server's keep-alive timeout while the others still submit, and the server closes it.
    conns = [await RawConnection.open(base) for _ in range(concurrency)]
    for i, job_id in enumerate(ids):
        await conns[i % concurrency].request("POST", f"/api/training/{job_id}/cancel", b"")
    for conn in conns:
        conn.close()
    return wall, ids, codes


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")


def summary(ms: list[float], errors: dict[str, int], seconds: float) -> dict[str, Any]:
    ms = sorted(ms)
    return {
        "ok": len(ms),
        "errors": errors,
        "achieved_rate": round(len(ms) / seconds, 1),
        "p50_ms": round(pct(ms, 50), 2),
        "p90_ms": round(pct(ms, 90), 2),
        "p99_ms": round(pct(ms, 99), 2),
        "max_ms": round(ms[-1], 2) if ms else None,
        "mean_ms": round(statistics.fmean(ms), 2) if ms else None,
    }


async def alternating_load(
    base: str, paths: dict[str, str], rate: float, seconds_each: float, block: float, connections: int = 32
) -> dict[str, Any]:
    """Open loop at ``rate`` requests/s, alternating ``block``-second blocks of each path until each has had
    ``seconds_each`` seconds. Request i is due at t0 + i/rate whatever happened to the earlier ones; its latency
    runs from that moment (time spent waiting for a free connection counts)."""
    pool: asyncio.Queue[RawConnection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await RawConnection.open(base))
    names = list(paths)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    errors: dict[str, dict[str, int]] = {name: {} for name in names}
    lags: list[float] = []

    async def one(name: str, due: float) -> None:
        conn = await pool.get()
        lags.append(time.perf_counter() - due)
        try:
            status, _ = await conn.get(paths[name])
            key = str(status)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            key = type(exc).__name__
            conn.close()
            conn = await RawConnection.open(base)
        pool.put_nowait(conn)
        if key == "200":
            latencies[name].append((time.perf_counter() - due) * 1000)
        else:
            errors[name][key] = errors[name].get(key, 0) + 1

    per_block = max(1, round(rate * block))
    total = int(rate * seconds_each) * len(names)
    tasks = []
    t0 = time.perf_counter() + 0.1
    for i in range(total):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(names[(i // per_block) % len(names)], due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    while not pool.empty():
        pool.get_nowait().close()
    lags.sort()
    result: dict[str, Any] = {name: summary(latencies[name], errors[name], elapsed / len(names)) for name in names}
    result["client_lag_p99_ms"] = round(pct(lags, 99) * 1000, 2)  # how late the client itself sent
    return result


async def job_state(base: str, job_id: str) -> dict[str, Any]:
    conn = await RawConnection.open(base)  # the server closes a connection idle for 5 s: a fresh one
    try:
        return json.loads((await conn.get(f"/api/training/{job_id}/status"))[1])  # type: ignore[no-any-return]
    finally:
        conn.close()


def measure(base: str, job_id: str, args: argparse.Namespace) -> dict[str, Any]:
    """``--runs`` runs of control and ``/status`` side by side; each run's figures and the spread of p99."""
    paths = {"control": CONTROL_PATH, "status": f"/api/training/{job_id}/status"}
    asyncio.run(alternating_load(base, paths, args.rate, 1.0, 0.5))  # warm-up, not counted
    runs = []
    for _ in range(args.runs):
        before = asyncio.run(job_state(base, job_id))
        load_before = load()
        run = asyncio.run(alternating_load(base, paths, args.rate, args.duration, args.block))
        after = asyncio.run(job_state(base, job_id))
        run.update(
            load=load_before,
            ratio=round(run["status"]["p99_ms"] / run["control"]["p99_ms"], 2),
            job_status=after["status"],
            training_steps=after["step"] - before["step"],
        )
        runs.append(run)
        print(
            f"  run {len(runs)}: /status p99 {run['status']['p99_ms']} ms, control p99 {run['control']['p99_ms']} ms, "
            f"ratio {run['ratio']}, load {load_before}, job {after['status']} (+{run['training_steps']} steps)",
            file=sys.stderr,
            flush=True,
        )

    def spread(values: list[float]) -> dict[str, float]:
        return {"min": min(values), "median": round(statistics.median(values), 2), "max": max(values)}

    return {
        "runs": runs,
        "status_p99": spread([r["status"]["p99_ms"] for r in runs]),
        "control_p99": spread([r["control"]["p99_ms"] for r in runs]),
        "status_p50": spread([r["status"]["p50_ms"] for r in runs]),
        "control_p50": spread([r["control"]["p50_ms"] for r in runs]),
        "ratio": spread([r["ratio"] for r in runs]),
        "errors": sum(sum(r[name]["errors"].values()) for r in runs for name in ("status", "control")),
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
            "accepted_per_s": round(statistics.median(rates), 1) if rates else None,
        }
        job_id = httpx.post(f"{s.base}/api/training/start", json=LONG_JOB, timeout=30).json()["job_id"]
        if "idle" in args.conditions:
            print(f"{setup}: no worker (the job waits in the queue)", file=sys.stderr, flush=True)
            result["idle"] = measure(s.base, job_id, args)
        if "training" in args.conditions:
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
            print(f"{setup}: while the job trains", file=sys.stderr, flush=True)
            result["training"] = measure(s.base, job_id, args)
        httpx.post(f"{s.base}/api/training/{job_id}/cancel", timeout=10)
        return result


def serve_api(port: int) -> None:
    """The API as ``skill-adapter serve --no-worker`` runs it, plus the control endpoint."""
    from skill_adapter.api.main import create_app, run_server
    from skill_adapter.core.config import load_settings
    from skill_adapter.core.db import init_db

    settings = load_settings()
    init_db(settings)
    app = create_app(settings)

    def control() -> dict[str, Any]:
        """A sync endpoint without a database: what FastAPI and uvicorn cost on their own."""
        return {"status": "ok"}

    app.add_api_route(CONTROL_PATH, control, methods=["GET"], include_in_schema=False)
    app.router.routes.insert(0, app.router.routes.pop())  # ahead of the dashboard's catch-all route
    run_server(app, host="127.0.0.1", port=port)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setups", default="embedded,services")
    parser.add_argument("--conditions", default="idle,training", help="idle (no worker), training, or both")
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16, help="client connections while submitting")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of submissions (the median is shown)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (control and /status alike)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per endpoint and run")
    parser.add_argument("--block", type=float, default=1.0, help="seconds before switching endpoint")
    parser.add_argument("--runs", type=int, default=5, help="runs per condition (the spread of p99)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--serve-api", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_api:
        serve_api(args.serve_api)
        return 0

    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    print(f"load average before: {load()}; {os.cpu_count()} CPUs", file=sys.stderr, flush=True)
    results = [run_setup(setup, args) for setup in args.setups.split(",")]
    print(
        f"\nGET at {args.rate:g} req/s, {args.runs} runs of {args.duration:g} s per endpoint "
        f"(alternating {args.block:g} s blocks); {os.cpu_count()} CPUs; load average now {load()}"
    )
    print("| setup | accepted/s | worker | /status p99 ms min / median / max | control p99 ms min / median / max "
          "| ratio min / median / max | /status p50 ms | control p50 ms | errors | load (1, 5, 15 min) |")  # fmt: skip
    print("|---|---:|---|---|---|---|---:|---:|---:|---|")
    for r in results:
        for label, key in (("idle (job queued)", "idle"), ("training", "training")):
            if key not in r:
                continue
            m = r[key]

            def mmm(d: dict[str, float]) -> str:
                return f"{d['min']} / {d['median']} / {d['max']}"

            loads = [run["load"] for run in m["runs"]]
            print(
                f"| {r['setup']} | {r['accepted_per_s']} | {label} | {mmm(m['status_p99'])} | {mmm(m['control_p99'])} "
                f"| {mmm(m['ratio'])} | {m['status_p50']['median']} | {m['control_p50']['median']} | {m['errors']} "
                f"| {loads[0]} … {loads[-1]} |"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
