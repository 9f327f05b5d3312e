"""The dashboard: its component tests (Vitest) and an end-to-end run in Chromium against the real service.

Needs Node.js with npm and Debian's Chromium (`apt-get install -y chromium`). Without them the tests are
skipped, unless SKILL_ADAPTER_REQUIRE_BROWSER=1 (set by .ci/run), which turns a missing tool into a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
# Read at import: the hermetic-environment fixture removes SKILL_ADAPTER_* variables before each test.
REQUIRE_BROWSER = os.environ.get("SKILL_ADAPTER_REQUIRE_BROWSER") == "1"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _need(*, browser: bool) -> None:
    """Skip (or, with SKILL_ADAPTER_REQUIRE_BROWSER=1, fail) when a tool the test needs is missing."""
    reason = None
    if not shutil.which("node") or not shutil.which("npm"):
        reason = "Node.js and npm are not installed (the dashboard's tests need them)"
    elif browser and not Path(CHROMIUM).is_file():
        reason = f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    if reason and REQUIRE_BROWSER:
        pytest.fail(f"SKILL_ADAPTER_REQUIRE_BROWSER=1 but {reason}")
    if reason:
        pytest.skip(reason)


def _run(cmd: list[str], *, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=FRONTEND, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )  # fmt: skip


def _assert_ok(result: subprocess.CompletedProcess[str], what: str) -> None:
    output = f"{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"{what} failed ({result.returncode}):\n{output}"


@pytest.fixture(scope="module")
def built_frontend() -> Path:
    """node_modules installed from package-lock.json and a fresh production build in frontend/dist."""
    _need(browser=False)
    lock, installed = FRONTEND / "package-lock.json", FRONTEND / "node_modules" / ".package-lock.json"
    if not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime:
        _assert_ok(_run(["npm", "ci", "--no-audit", "--no-fund"], timeout=600), "npm ci")
    _assert_ok(_run(["npm", "run", "build"], timeout=300), "npm run build")
    return FRONTEND / "dist"


def test_component_tests(built_frontend: Path) -> None:
    """Vitest: the views against a fetch double, in jsdom (no browser needed)."""
    result = _run(["npx", "vitest", "run"], timeout=600, env={**os.environ, "CI": "true", "NO_COLOR": "1"})
    _assert_ok(result, "vitest")
    assert " passed" in result.stdout


@pytest.mark.timeout(1500)
def test_end_to_end_in_chromium(built_frontend: Path, tmp_path: Path) -> None:
    """Upload a SKILL.md through the page, train, watch it succeed with a loss curve, evaluate."""
    _need(browser=True)
    assert (built_frontend / "index.html").is_file()
    env = {
        **os.environ,
        "CHROMIUM": CHROMIUM,
        "SKILL_ADAPTER_PYTHON": sys.executable,
        "SCREENSHOT_DIR": str(tmp_path / "screenshots"),
    }
    result = _run(["node", "e2e/dashboard.e2e.mjs"], timeout=1400, env=env)
    _assert_ok(result, "the dashboard's end-to-end run")
    assert ", 0 failed" in result.stdout
    shots = sorted(p.name for p in (tmp_path / "screenshots").glob("*.png"))
    expected = ["job-page-evaluation.png", "job-page-try-it.png", "job-page.png", "jobs-list.png", "training-tab.png"]
    assert shots == expected


@pytest.mark.timeout(600)
def test_keys_in_chromium(built_frontend: Path) -> None:
    """On a server with API keys: the dashboard asks for one, keeps it for the tab, shows 401 and 429 as
    messages a person can act on, and a page on another origin changes nothing (issue 15)."""
    _need(browser=True)
    env = {**os.environ, "CHROMIUM": CHROMIUM, "SKILL_ADAPTER_PYTHON": sys.executable}
    result = _run(["node", "e2e/keys.e2e.mjs"], timeout=500, env=env)
    _assert_ok(result, "the dashboard's keys run")
    assert "6 passed, 0 failed" in result.stdout
