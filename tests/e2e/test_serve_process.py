"""``skill-adapter serve``: its embedded worker and model server stop on Ctrl-C and die with it after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.processes import API_PATIENCE, CliProcess, free_port, service_env, uvicorn_ready_line

pytestmark = pytest.mark.slow  # starts the service's processes


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_serve(tmp_path: Path, skills_root: Path) -> tuple[subprocess.Popen[bytes], list[int]]:
    port = free_port()
    serve = CliProcess(
        ["serve", "--port", str(port)],
        env=service_env(tmp_path, skills_root),
        cwd=tmp_path,
        log_path=tmp_path / "serve.log",
    )
    serve.wait_for_line(uvicorn_ready_line(port), API_PATIENCE, what="serve")
    children = children_of(serve.pid)
    assert len(children) == 2, "serve starts a worker and a model server"
    return serve.proc, children


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and PR_SET_PDEATHSIG")
def test_ctrl_c_stops_api_and_worker(tmp_path: Path, skills_root: Path) -> None:
    proc, children = start_serve(tmp_path, skills_root)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)
    while any(alive(child) for child in children) and time.monotonic() - started < 10:
        time.sleep(0.1)
    assert not any(alive(child) for child in children)
    assert time.monotonic() - started < 10


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and PR_SET_PDEATHSIG")
def test_worker_dies_with_killed_parent(tmp_path: Path, skills_root: Path) -> None:
    proc, children = start_serve(tmp_path, skills_root)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(alive(child) for child in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(child) for child in children)
