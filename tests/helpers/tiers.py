"""Which test modules a tier's ``-m`` expression leaves out entirely, read from their source without importing
them (conftest.py's ``pytest_ignore_collect`` skips those)."""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path
from typing import Any


def never_selected(path: Path, expression: str) -> bool:
    """Whether the ``-m`` ``expression`` deselects every test of the module ``path`` by its ``pytestmark``.

    Sound: a test's marks are its module's plus its own, so this is true only when the expression is false for
    the module's marks together with any combination of the other names the expression mentions."""
    marks = module_marks(path)
    if not marks:
        return False
    from _pytest.mark.expression import Expression

    compiled = Expression.compile(expression)
    others = sorted(set(re.findall(r"[A-Za-z_][\w.]*", expression)) - {"and", "or", "not", "True", "False"} - marks)
    for extra in itertools.chain.from_iterable(itertools.combinations(others, n) for n in range(len(others) + 1)):
        if compiled.evaluate(lambda name, /, _present=marks | set(extra), **_kwargs: name in _present):
            return False
    return True


def module_marks(path: Path) -> set[str]:
    """The marker names of a module's top-level ``pytestmark`` (``pytest.mark.x``, called or not, or a list of
    them); empty when it has none or it is written in another way (the module is then collected as usual)."""
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return set()
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets) and node.value is not None:
                items = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
                names = [_mark_name(item) for item in items]
                return set() if None in names else {name for name in names if name}
    return set()


def _mark_name(node: Any) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "mark"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "pytest"
    ):
        return node.attr
    return None
