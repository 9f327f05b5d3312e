"""Paths and names the tests share (conftest.py's fixtures build on them)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SKILLS = REPO_ROOT / "skills"
REAL_MODEL = "smollm2-135m-instruct"
