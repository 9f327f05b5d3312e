"""The typed result of importing a SKILL.md: frontmatter fields, body structure, references, findings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["warning", "info"]


@dataclass(frozen=True)
class Finding:
    """A spec violation or a repair the importer made. Never fatal; fatal input raises SkillParseError."""

    code: str
    message: str
    line: int | None = None
    severity: Severity = "warning"


@dataclass(frozen=True)
class CodeBlock:
    language: str
    code: str
    line: int


@dataclass
class Section:
    """One heading and the markdown under it, up to the next heading of any level."""

    title: str
    level: int
    line: int
    text: str
    parents: tuple[str, ...] = ()
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    code_blocks: list[CodeBlock] = field(default_factory=list)

    @property
    def path(self) -> str:
        return " > ".join((*self.parents, self.title))


@dataclass(frozen=True)
class ExplicitExample:
    """An input/output pair the author wrote in the body (an Example section, Input:/Output: blocks …)."""

    input: str
    output: str
    section: str
    line: int


@dataclass
class Reference:
    """A file under scripts/, references/ or assets/ named in the body. `text` is set when it was read."""

    path: str
    kind: Literal["scripts", "references", "assets"]
    line: int
    text: str | None = None
    exists: bool | None = None


@dataclass
class Skill:
    name: str
    description: str
    body: str
    license: str | None = None
    compatibility: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    allowed_tools: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)
    examples: list[ExplicitExample] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for section, raw in zip(self.sections, data["sections"], strict=True):
            raw["path"] = section.path
        return data
