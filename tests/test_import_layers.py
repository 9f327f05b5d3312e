"""No import circles in the backend: read from the source (``ast``), so it costs no torch import.

Packages here are the floors of ``skill_adapter``: each sub-package (``api``, ``core``, ``skills``, ...) and each
top-level module (``service``, ``crud``, ``pipeline``, ...). Imports at module level run when the module is
imported; imports inside a function (deferred) run when it is called.

- No module reaches itself back through module-level imports (Python would hand out a half-made module).
- No two packages import each other at module level.
- Deferred imports close no circle between packages either, except the few listed in ``DEFERRED_BACK_EDGES``
  (each names the file that owns it). The list only shrinks: an entry that is gone fails the test too, so
  whoever removes a back edge removes its line.

Why not ``import-linter``: its graph (grimp) makes no difference between module-level and deferred imports,
so these three rules would become ignore lists anyway, and a new dependency changes ``uv.lock`` under every
branch in flight; the graph below is fifty lines.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from tests.helpers.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "backend" / "skill_adapter"
PREFIX = "skill_adapter."

# (importing module, imported module) pairs, deferred, that close a circle between packages today.
DEFERRED_BACK_EDGES = {
    # core/config.py checks webhook URLs while it loads settings (webhooks.py needs core at module level).
    ("skill_adapter.core.config", "skill_adapter.webhooks"),
    # The pipeline and evaluations write the adapter's model card (serving/ imports evaluation.jobs).
    ("skill_adapter.pipeline", "skill_adapter.serving.card"),
    ("skill_adapter.evaluation.jobs", "skill_adapter.serving.card"),
    # queued.py's training kind names the checkpoint a crashed run resumes from (training/ reports through
    # reporting.py, which records ends through queued.py).
    ("skill_adapter.queued", "skill_adapter.training.checkpoints"),
}


def module_files() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if "migrations" in parts:  # Alembic's scripts, loaded by Alembic, not imported
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = module_files()


def imports(path: Path) -> tuple[set[str], set[str]]:
    """The ``skill_adapter`` modules a file imports: (at module level, deferred in a function). Imports under
    ``if TYPE_CHECKING:`` never run and are left out."""
    at_load: set[str] = set()
    deferred: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            found = at_load if not in_function else deferred
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if (a.name + ".").startswith(PREFIX))
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and f"{child.module}.".startswith(PREFIX):
                for alias in child.names:  # `from skill_adapter import crud` imports the module crud
                    sub = f"{child.module}.{alias.name}"
                    found.add(sub if sub in MODULES else str(child.module))
            visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return at_load, deferred


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def strong(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                strong(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while (top := stack.pop()) != node:
                component.append(top)
            component.append(node)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strong(node)
    return found


def package_graph(edges: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        if package_of(source) != package_of(target):
            graph[package_of(source)].add(package_of(target))
    return graph


def edges(*, deferred: bool) -> set[tuple[str, str]]:
    found = set()
    for module, path in MODULES.items():
        at_load, later = imports(path)
        found |= {(module, target) for target in at_load | (later if deferred else set()) if target != module}
    return found


def test_the_graph_sees_the_package() -> None:
    at_load = edges(deferred=False)
    assert len(MODULES) > 50 and ("skill_adapter.api.routes.training", "skill_adapter.intake") in at_load
    assert {package_of(m) for m in MODULES} >= {"api", "core", "skills", "datasets", "training", "worker"}


def test_no_module_imports_itself_back_at_import_time() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges(deferred=False):
        graph[source].add(target)
    assert cycles(graph) == []


def test_no_two_packages_import_each_other_at_import_time() -> None:
    assert cycles(package_graph(edges(deferred=False))) == []


def test_deferred_imports_close_no_other_circle() -> None:
    every = edges(deferred=True)
    assert every >= DEFERRED_BACK_EDGES, f"gone, remove from DEFERRED_BACK_EDGES: {DEFERRED_BACK_EDGES - every}"
    assert cycles(package_graph(every - DEFERRED_BACK_EDGES)) == []
