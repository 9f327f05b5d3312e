"""A new user's first minutes: the CLI and `serve` print no warnings that are not ours, and health says the
embedded worker is starting (not missing) while it boots.

The known-harmless notices (bitsandbytes' kernels-community fallback, PEFT's use of a deprecated
transformers property, Celery's superuser warning, kombu's default hostname) are filtered by their exact
text in ``skill_adapter.quiet``; anything else that looks like a warning from a library fails these tests.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.noise import NOISE_SEEN, foreign_lines
from tests.helpers.paths import EXAMPLE_SKILLS
from tests.helpers.processes import (
    API_PATIENCE,
    WORKER_PATIENCE,
    free_port,
    running_cli,
    service_env,
    uvicorn_ready_line,
    wait_until,
)

pytestmark = pytest.mark.slow


def test_the_detector_catches_the_noise_a_fresh_clone_printed() -> None:
    assert foreign_lines("\n".join(NOISE_SEEN)) == NOISE_SEEN
    ours = "2026-12-02 17:25:18,881 WARNING skill_adapter.pipeline: job train-1 was taken back"
    assert foreign_lines(f"job train-1: training skills/x/SKILL.md\r 11%|█ | 11% loss=7.17\n{ours}") == []


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = service_env(tmp_path, tmp_path / "skills")
    env["SKILL_ADAPTER_MODEL"] = "tiny"
    return env


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skill_adapter.cli", *args],
        env=cli_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_readme_main_command_and_an_evaluation_print_no_foreign_warnings(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLE_SKILLS, tmp_path / "skills")
    # The README's main command (one epoch, to stay short), from a fresh folder, on the tiny model.
    train = run_cli(tmp_path, "train", "skills/commit-messages/SKILL.md", "--epochs", "1")
    assert train.returncode == 0, train.stderr[-3000:]
    assert foreign_lines(train.stdout + train.stderr) == []
    job_id = re.search(r"job (train-[0-9a-f]+)", train.stdout)
    assert job_id is not None, train.stdout

    evaluate = run_cli(tmp_path, "evaluate", job_id.group(1), "--limit", "2", "--max-new-tokens", "4")
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    assert foreign_lines(evaluate.stdout + evaluate.stderr) == []
    assert "**Read this first:**" in evaluate.stdout and "base + SKILL.md" in evaluate.stdout


def test_serve_says_its_worker_is_starting_and_the_worker_log_is_quiet(tmp_path: Path, skills_root: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    with running_cli(
        ["serve", "--port", str(port)], env=service_env(tmp_path, skills_root), cwd=tmp_path, log_path=log_path
    ) as serve:
        serve.wait_for_line(uvicorn_ready_line(port), API_PATIENCE, what="serve")
        seen: list[dict[str, Any]] = []

        def worker_running() -> bool:
            seen.append(httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).json())
            return bool(seen[-1]["embedded_worker"]["status"] == "running")

        wait_until(worker_running, WORKER_PATIENCE, "the embedded worker's first heartbeat")
        states = [body["embedded_worker"]["status"] for body in seen]
        # "starting" until the worker's first heartbeat, then "running": never "no live worker".
        assert states == sorted(states, key=["starting", "running"].index), states
        for body in seen:
            assert not any("no live worker" in warning for warning in body["warnings"]), body["warnings"]
            if body["embedded_worker"]["status"] == "starting":
                assert any("the embedded worker is starting" in w for w in body["warnings"]), body["warnings"]
        assert seen[-1]["workers"][0]["pid"] == seen[-1]["embedded_worker"]["pid"]
        # The worker has connected to the broker (kombu's hostname notice would come now) and is ready.
        serve.wait_for_line("ready.", WORKER_PATIENCE, what="the embedded worker")
    output = log_path.read_text(errors="replace")
    assert "ready." in output, output[-3000:]
    assert foreign_lines(output) == []
