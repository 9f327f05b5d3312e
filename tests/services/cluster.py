"""The service as separate processes on real Redis and Postgres: a private redis-server, a database of
its own, the API (``serve --no-worker``) and Celery workers, each a subprocess with its own log file."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from skill_adapter.cli import worker_command
from tests.helpers.processes import JOB_PATIENCE, free_port

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
TERMINAL = {"succeeded", "failed", "cancelled"}
# A job of a few optimizer steps: 38 examples, 16 per step.
QUICK_JOB = {"skill_path": "commit-messages/SKILL.md", "num_epochs": 1, "batch_size": 4}
# Enough steps to be killed in the middle of, with a checkpoint every few steps.
LONG_JOB = {
    "skill_path": "commit-messages/SKILL.md",
    "num_epochs": 2,
    "batch_size": 1,
    "gradient_accumulation_steps": 1,
    "learning_rate": 1e-3,
    "save_steps": 5,
}


def wait_until(predicate: Any, timeout: float = JOB_PATIENCE, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; fail with ``what`` after ``timeout`` seconds.

    The default patience is a job's: what these tests await (a step, a message delivered, a task's end)
    comes after a worker's child process has imported torch and loaded a model, which takes minutes on a
    crowded 2-core machine (60 s timed out there: "training to be under way")."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.2)


def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3):
            return True
    except Exception:
        return False


class RedisServer:
    """A private ``redis-server`` on a free port, without persistence: a restart loses every message."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if self.client().ping():
                    return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)


class PostgresDatabase:
    """A database of its own on the machine's Postgres, dropped afterwards."""

    def __init__(self) -> None:
        self.name = f"skill_adapter_test_{uuid.uuid4().hex[:10]}"
        self._admin(f'CREATE DATABASE "{self.name}"')

    def url(self, port: int = PG_PORT) -> str:
        return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{port}/{self.name}"

    def drop(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=self.name, autocommit=True) as conn:
            return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    base: str = ""

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        """SIGKILL: no clean-up. A worker's training process dies with it (PR_SET_PDEATHSIG)."""
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


@dataclass
class Cluster:
    tmp_path: Path
    skills_root: Path
    redis: RedisServer
    db: PostgresDatabase
    env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)

    def __post_init__(self) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("SKILL_ADAPTER_")}
        base.update(
            SKILL_ADAPTER_DATABASE_URL=self.db.url(),
            SKILL_ADAPTER_BROKER_URL=self.redis.url,
            SKILL_ADAPTER_MODEL="tiny",
            SKILL_ADAPTER_DATA_DIR=str(self.tmp_path / "data"),
            SKILL_ADAPTER_CHECKPOINT_DIR=str(self.tmp_path / "checkpoints"),
            SKILL_ADAPTER_SKILLS_ROOT=str(self.skills_root),
            SKILL_ADAPTER_SWEEP_INTERVAL_SECONDS="1",
            SKILL_ADAPTER_REQUEUE_AFTER_SECONDS="3",
            SKILL_ADAPTER_JOB_LEASE_SECONDS="6",
            CUDA_VISIBLE_DEVICES="",
            HF_HUB_OFFLINE="1",
            OMP_NUM_THREADS="1",
            TOKENIZERS_PARALLELISM="false",
        )
        self.env = {**base, **self.env}
        self.migrate()

    def migrate(self) -> None:
        """Bring the new database's schema up to date, as an operator does before starting the service."""
        cmd = [sys.executable, "-m", "skill_adapter.cli", "db", "upgrade"]
        out = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-3000:]

    def create_key(self, name: str) -> dict[str, str]:
        """``skill-adapter keys create NAME``, as an operator runs it; the header that carries the new key."""
        cmd = [sys.executable, "-m", "skill_adapter.cli", "keys", "create", name]
        out = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-3000:]
        return {"Authorization": f"Bearer {out.stdout.strip().splitlines()[-1]}"}

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> Proc:
        log_path = self.tmp_path / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(cmd, env=env or self.env, cwd=self.tmp_path, stdout=log, stderr=subprocess.STDOUT)
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        return proc

    def start_api(self, name: str = "api", port: int | None = None, **env: str) -> Proc:
        port = port or free_port()
        cmd = [sys.executable, "-m", "skill_adapter.cli", "serve", "--no-worker", "--port", str(port)]
        proc = self._spawn(name, cmd, {**self.env, **env})
        proc.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.popen.poll() is None, f"{name} exited:\n{proc.text()[-3000:]}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{proc.base}/api/config", timeout=2).status_code == 200:
                    return proc
            time.sleep(0.1)
        raise AssertionError(f"{name} did not start:\n{proc.text()[-3000:]}")

    def start_worker(self, name: str, **env: str) -> Proc:
        """A Celery worker as the CLI starts it (solo pool, prefetch 1), ready to consume when this returns."""
        proc = self._spawn(name, worker_command(name=f"{name}@%h"), {**self.env, **env})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.popen.poll() is None, f"{name} exited:\n{proc.text()[-3000:]}"
            if " ready." in proc.text():
                return proc
            time.sleep(0.1)
        raise AssertionError(f"{name} did not become ready:\n{proc.text()[-3000:]}")

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill9()

    # HTTP ------------------------------------------------------------------------------------------
    def status(self, api: Proc, job_id: str) -> dict[str, Any]:
        resp = httpx.get(f"{api.base}/api/training/{job_id}/status", timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def logs(self, api: Proc, job_id: str) -> list[str]:
        resp = httpx.get(f"{api.base}/api/training/{job_id}/logs", params={"limit": 1000}, timeout=10)
        return [line["message"] for line in resp.json()["lines"]]

    def submit(self, api: Proc, body: dict[str, Any] | None = None) -> str:
        resp = httpx.post(f"{api.base}/api/training/start", json=body or QUICK_JOB, timeout=30)
        assert resp.status_code == 202, resp.text
        return str(resp.json()["job_id"])

    def wait_for(self, api: Proc, job_id: str, statuses: set[str] = TERMINAL, timeout: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status(api, job_id)
            if status["status"] in statuses:
                return status
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} never reached {statuses}: {status}\n{self.diagnostics(api, job_id)}")

    def wait_for_checkpoint(self, api: Proc, job_id: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            resp = httpx.get(f"{api.base}/api/training/{job_id}/checkpoints", timeout=10).json()
            if any(c["complete"] for c in resp["data"]):
                return
            time.sleep(0.1)
        raise AssertionError(f"no complete checkpoint for {job_id}\n{self.diagnostics(api, job_id)}")

    def diagnostics(self, api: Proc, job_id: str) -> str:
        parts = []
        with contextlib.suppress(Exception):
            parts.append("job log:\n" + "\n".join(self.logs(api, job_id)[-30:]))
        for proc in self.procs:
            parts.append(f"--- {proc.name} ---\n{proc.text()[-1500:]}")
        return "\n".join(parts)

    def job_rows(self) -> dict[str, dict[str, Any]]:
        rows = self.db.query("SELECT id, status, attempts, error_code, worker_id FROM jobs")
        return {r[0]: {"status": r[1], "attempts": r[2], "error_code": r[3], "worker_id": r[4]} for r in rows}

    def claims(self, job_id: str) -> list[str]:
        """The log lines that record a worker claiming (and so training) the job."""
        rows = self.db.query("SELECT message FROM log_lines WHERE job_id = %s ORDER BY id", job_id)
        return [r[0] for r in rows if r[0].startswith("claimed by worker")]


def cleanup_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
