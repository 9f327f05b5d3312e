"""The service's processes as the tests start them: ``skill-adapter serve`` (or any CLI command) in a subprocess
whose output is teed into a log file, and waits that end on an event (a line the process prints, or its exit)
instead of a fixed sleep.

Patience is scaled to what is awaited (these are limits, never expectations: a wait returns the moment its
event happens):

- ``API_PATIENCE``: the API answering. ``serve`` imports torch and transformers before uvicorn binds: 5-15 s on
  idle cores, up to a minute on a crowded two-core machine.
- ``WORKER_PATIENCE``: a Celery worker printing ``ready.`` (same imports, then the broker connection).
- ``MODEL_SERVER_PATIENCE``: the model server process binding its port (its own torch import, in parallel).
- ``JOB_PATIENCE``: a tiny-model training job from submission to its end (tens of seconds, minutes when crowded).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx

API_PATIENCE = 120.0
WORKER_PATIENCE = 120.0
MODEL_SERVER_PATIENCE = 180.0
JOB_PATIENCE = 300.0
STOP_PATIENCE = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(tmp_path: Path, skills_root: Path) -> dict[str, str]:
    """The environment of a service on the tiny model, its data under ``tmp_path``, on the CPU, offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILL_ADAPTER_")}
    env.update(
        SKILL_ADAPTER_MODEL="tiny",
        SKILL_ADAPTER_DATA_DIR=str(tmp_path / "data"),
        SKILL_ADAPTER_CHECKPOINT_DIR=str(tmp_path / "checkpoints"),
        SKILL_ADAPTER_SKILLS_ROOT=str(skills_root),
        SKILL_ADAPTER_SAVE_STEPS="10",
        SKILL_ADAPTER_SWEEP_INTERVAL_SECONDS="2",
        CUDA_VISIBLE_DEVICES="",
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="2",
    )
    return env


def uvicorn_ready_line(port: int) -> str:
    """What uvicorn prints once it listens on ``port`` (the model server a ``serve`` starts prints its own)."""
    return f"Uvicorn running on http://127.0.0.1:{port}"


class CliProcess:
    """``python -m skill_adapter.cli <args>``; a reader thread tees its output into ``log_path`` and wakes waiters
    on every line and at the end of the output (the process exited)."""

    def __init__(self, args: list[str], *, env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.log_path = log_path
        self.args = args
        self._lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "skill_adapter.cli", *args],
            env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._tee, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _tee(self, stream: IO[bytes]) -> None:
        with self.log_path.open("ab") as log:
            for raw in iter(stream.readline, b""):
                log.write(raw)
                log.flush()
                with self._changed:
                    self._lines.append(raw.decode(errors="replace"))
                    self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def text(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for_line(self, fragment: str, patience: float, what: str = "") -> None:
        """Return once a line containing ``fragment`` has been printed; fail if the process ends first or
        ``patience`` seconds pass."""

        def seen() -> bool:
            return any(fragment in line for line in self._lines)

        with self._changed:
            self._changed.wait_for(lambda: seen() or self._ended, timeout=patience)
            if seen():
                return
            ended = self._ended
        why = f"exited with {self.proc.wait()}" if ended else f"printed no {fragment!r} within {patience:.0f} s"
        raise AssertionError(f"{what or ' '.join(self.args)} {why}:\n{self.text()[-3000:]}")

    def stop(self, sig: int = signal.SIGINT, patience: float = STOP_PATIENCE) -> int:
        """Send ``sig`` and wait for the exit (killed after ``patience``); the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=patience)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=patience)
        return self.proc.returncode


@contextmanager
def running_cli(
    args: list[str], *, env: dict[str, str], cwd: Path, log_path: Path, stop_signal: int = signal.SIGINT
) -> Iterator[CliProcess]:
    process = CliProcess(args, env=env, cwd=cwd, log_path=log_path)
    try:
        yield process
    finally:
        process.stop(stop_signal)


@contextmanager
def running_serve(
    *extra_args: str,
    env: dict[str, str],
    cwd: Path,
    log_path: Path | None = None,
    port: int | None = None,
    patience: float = API_PATIENCE,
) -> Iterator[tuple[str, CliProcess]]:
    """``skill-adapter serve`` on a free port; yields its base URL once uvicorn listens and /api/health answers,
    stops it with Ctrl-C (SIGINT) on exit."""
    port = port or free_port()
    args = ["serve", "--port", str(port), *extra_args]
    with running_cli(args, env=env, cwd=cwd, log_path=log_path or cwd / "service.log") as process:
        process.wait_for_line(uvicorn_ready_line(port), patience, what="serve")
        base = f"http://127.0.0.1:{port}"
        resp = httpx.get(f"{base}/api/health", timeout=30)
        assert resp.status_code == 200, resp.text
        yield base, process


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid`` (children, their children ...), read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # Field 4 of /proc/PID/stat, after the command name in parentheses (which may hold spaces).
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # it exited while we looked
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_until(predicate: Callable[[], Any], patience: float, what: str, interval: float = 0.2) -> Any:
    """Poll a condition the process under test offers no line for (an HTTP answer); its first truthy value."""
    deadline = time.monotonic() + patience
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {patience:.0f} s waiting for: {what}")
        time.sleep(interval)
    return value


def wait_for_job(base: str, job_id: str, statuses: set[str], patience: float = JOB_PATIENCE) -> dict[str, Any]:
    """The job's status once it is one of ``statuses``."""
    last: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        nonlocal last
        last = httpx.get(f"{base}/api/training/{job_id}/status", timeout=10).json()
        return last if last["status"] in statuses else None

    try:
        return wait_until(reached, patience, f"job {job_id} to reach {sorted(statuses)}", interval=0.5)  # type: ignore[no-any-return]
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last status {last}") from None
