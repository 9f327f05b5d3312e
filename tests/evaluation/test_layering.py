"""No import circle inside evaluation/: the torch-free job side and the torch runner import in one direction."""

from __future__ import annotations

import ast
from pathlib import Path

import skill_adapter.evaluation as evaluation_package


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_jobs_and_runner_do_not_import_each_other() -> None:
    folder = Path(evaluation_package.__file__).parent
    jobs = imported_modules(folder / "jobs.py")
    runner = imported_modules(folder / "runner.py")
    assert not ("skill_adapter.evaluation.runner" in jobs and "skill_adapter.evaluation.jobs" in runner)
    assert "skill_adapter.evaluation.jobs" not in runner  # the runner is below the job side
