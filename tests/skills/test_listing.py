"""skills.listing: the SKILL.md files under a root, named as the parser names them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skill_adapter.skills import ListedSkill, list_skills, parse_skill
from skill_adapter.skills.listing import MAX_LIST_DEPTH
from skill_adapter.skills.parser import MAX_FRONTMATTER_BYTES, frontmatter_name

BODY = "\n# Title\n\nSome text.\n"


@pytest.mark.parametrize(
    "frontmatter",
    [
        "name: plain-name\ndescription: x",
        "name: 'quoted-name'\ndescription: x",
        'description: x\nname: "late-name"',
        "name: needs: repair\ndescription: x",  # YAML refuses it; the parser quotes the value
        "name: >-\n  folded-name\ndescription: x",  # a block scalar: the name is on the next line
        "name: 42\ndescription: x",  # coerced to a string
    ],
)
def test_the_listed_name_is_the_parsers_name(frontmatter: str) -> None:
    text = f"---\n{frontmatter}\n---\n{BODY}"
    assert frontmatter_name(text) == parse_skill(text).name
    assert frontmatter_name(("\ufeff" + text.replace("\n", "\r\n")).encode()) == parse_skill(text).name


@pytest.mark.parametrize(
    "text",
    [
        BODY,  # no frontmatter (the parser derives a name; the list shows none)
        "---\ndescription: x\n---\n" + BODY,  # no name
        "---\nname: unclosed\n" + BODY,  # the parser reads it all as body
        "---\n- a\n- b\n---\n" + BODY,  # not a mapping
        "---\na: &a x\nb: [" + ", ".join(["*a"] * 200) + "]\nname: x\n---\n",  # hostile YAML (aliases)
        "---\nname: big\npad: '" + "x" * MAX_FRONTMATTER_BYTES + "'\n---\n",  # larger than the parser takes
    ],
)
def test_no_name_when_the_frontmatter_gives_none(text: str) -> None:
    assert frontmatter_name(text) == ""


def write(path: Path, name: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "SKILL.md").write_text(f"---\nname: {name}\ndescription: x\n---\n{BODY}")


def test_list_skills_sorted_inside_the_root_within_depth(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root / "b-skill", "b-skill")
    write(root / "a-skill", "a-skill")
    write(root / "group" / "nested", "nested")
    write(root / ".hidden", "hidden")
    deep = root.joinpath(*[f"d{i}" for i in range(MAX_LIST_DEPTH + 1)])
    write(deep, "too-deep")
    write(tmp_path / "outside", "secret")
    os.symlink(tmp_path / "outside", root / "escape")
    (root / "not-a-skill").mkdir()
    assert list_skills(root) == [
        ListedSkill("a-skill/SKILL.md", "a-skill"),
        ListedSkill("b-skill/SKILL.md", "b-skill"),
        ListedSkill("group/nested/SKILL.md", "nested"),
    ]
    assert list_skills(tmp_path / "missing") == []
