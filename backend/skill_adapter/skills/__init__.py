"""Import Agent Skills: parse a SKILL.md (lenient, with findings), load a skill folder or archive, and list the
skills on the server."""

from skill_adapter.skills.folder import load_skill_path
from skill_adapter.skills.listing import ListedSkill, list_skills
from skill_adapter.skills.parser import parse_skill

__all__ = ["ListedSkill", "list_skills", "load_skill_path", "parse_skill"]
