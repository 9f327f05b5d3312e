"""Every real-world SKILL.md in the shared corpus (written by others) imports, with the expected findings."""

from __future__ import annotations

from pathlib import Path

import pytest

from skill_adapter.skills import load_skill_path

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "skills"

if not CORPUS.is_dir():
    pytest.skip(f"corpus folder {CORPUS} is absent", allow_module_level=True)

SKILL_FILES = sorted(CORPUS.rglob("SKILL.md"))


def codes(path: Path) -> list[str]:
    return [f.code for f in load_skill_path(path).findings]


@pytest.mark.parametrize("path", SKILL_FILES, ids=lambda p: p.parent.name)
def test_imports(path: Path) -> None:
    skill = load_skill_path(path)
    assert skill.name
    assert skill.description
    assert len(skill.sections) >= 1
    for section in skill.sections:
        assert section.line >= 1
    for ref in skill.references:
        assert ref.exists is not None


def test_sample_skill_without_frontmatter() -> None:
    skill = load_skill_path(CORPUS / "alirezarezvani" / "sample-skill")
    assert skill.name == "sample-skill"
    found = [f.code for f in skill.findings]
    assert "no_frontmatter" in found
    assert "description_derived" in found


def test_known_quirks() -> None:
    assert "crlf_line_endings" in codes(CORPUS / "k-dense" / "geomaster" / "SKILL.md")
    planning = load_skill_path(CORPUS / "sickn33" / "planning-with-files")
    assert "allowed_tools_list" in [f.code for f in planning.findings]
    assert "Read" in planning.allowed_tools
    claude_api = load_skill_path(CORPUS / "anthropics" / "claude-api")
    assert "description_too_long" in [f.code for f in claude_api.findings]
    assert len(claude_api.description) > 1024
    assert "name_mismatch" in codes(CORPUS / "anthropics" / "template")
