"""Import Agent Skills: parse a SKILL.md (lenient, with findings) and load a skill folder or archive."""

from skill_adapter.skills.folder import load_skill_path
from skill_adapter.skills.parser import parse_skill

__all__ = ["load_skill_path", "parse_skill"]
