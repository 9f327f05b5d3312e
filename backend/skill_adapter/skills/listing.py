"""The skills on the server: every SKILL.md under the skills root, with the name its frontmatter gives."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from skill_adapter.skills.parser import MAX_FRONTMATTER_BYTES, frontmatter_name

MAX_LISTED_SKILLS = 500
MAX_LIST_DEPTH = 4
# Enough of a SKILL.md's start to hold any frontmatter the parser accepts, with its fences.
_HEAD_BYTES = MAX_FRONTMATTER_BYTES + 1024


@dataclass(frozen=True)
class ListedSkill:
    path: str  # relative to the root, with "/": a ``skill_path`` for /api/training/start as it is
    name: str  # the frontmatter's ``name``; "" when it has none


def read_name(path: Path) -> str:
    """The frontmatter ``name`` of the SKILL.md at ``path``, from its first bytes ("" when unreadable)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError:
        return ""
    return frontmatter_name(head)


def list_skills(root: Path) -> list[ListedSkill]:
    """SKILL.md files under ``root``, sorted by path: no hidden folder, no deeper than :data:`MAX_LIST_DEPTH`
    folders, at most :data:`MAX_LISTED_SKILLS`, and no link followed out of the root."""
    root = root.resolve()
    if not root.is_dir():
        return []
    found: list[ListedSkill] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        depth = len(here.relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and depth < MAX_LIST_DEPTH)
        if "SKILL.md" in files:
            path = (here / "SKILL.md").resolve()
            if path.is_relative_to(root) and path.is_file():
                found.append(ListedSkill(path.relative_to(root).as_posix(), read_name(path)))
                if len(found) >= MAX_LISTED_SKILLS:
                    break
    return sorted(found, key=lambda entry: entry.path)
