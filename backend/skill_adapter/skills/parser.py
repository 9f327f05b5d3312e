"""Parse a SKILL.md (frontmatter + markdown body) into a :class:`Skill`.

The importer is lenient: spec violations and safe repairs become :class:`Finding` objects. Only input that
cannot be recovered raises :class:`SkillParseError` — and nothing else is ever raised.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.events import AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, SequenceNode

from skill_adapter.core.budget import check_budget
from skill_adapter.core.errors import SkillParseError
from skill_adapter.skills.model import CodeBlock, ExplicitExample, Finding, Reference, Section, Skill

MAX_BYTES = 1 << 20
MAX_FRONTMATTER_BYTES = 64 * 1024
MAX_ALIASES = 100
MAX_NODES = 10_000
MAX_DEPTH = 40
MAX_NAME_LEN = 64
MAX_DESCRIPTION_LEN = 1024
MAX_COMPATIBILITY_LEN = 500
DERIVED_DESCRIPTION_LEN = 300
MAX_SECTIONS = 5_000  # headings; each becomes training prompts, so more is spam, refused at once

KNOWN_KEYS = ("name", "description", "license", "compatibility", "metadata", "allowed-tools")
NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_ALLOWED_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")}
_CONTROL_BYTES = bytes([*range(0, 9), 11, 12, *range(14, 32), 127])


class _HostileYAML(Exception):
    pass


class _GuardedLoader(yaml.SafeLoader):
    """SafeLoader that refuses explicit tags, alias bombs and deep nesting while composing (before construction)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0
        self._weights: dict[int, int] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        check_budget()
        if self.check_event(AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _HostileYAML(f"more than {MAX_ALIASES} aliases")
            return super().compose_node(parent, index)
        event = self.peek_event()
        if isinstance(event, ScalarEvent | SequenceStartEvent | MappingStartEvent):
            tag = event.tag
            if tag not in (None, "!") and tag not in _ALLOWED_TAGS:
                raise _HostileYAML(f"explicit YAML tag {tag!r} is not allowed")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _HostileYAML(f"YAML nested deeper than {MAX_DEPTH} levels")
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        weight = 1
        if isinstance(node, SequenceNode):
            weight += sum(self._weights.get(id(child), 1) for child in node.value)
        elif isinstance(node, MappingNode):
            weight += sum(self._weights.get(id(k), 1) + self._weights.get(id(v), 1) for k, v in node.value)
        if weight > MAX_NODES:
            raise _HostileYAML(f"YAML expands to more than {MAX_NODES} nodes (alias bomb?)")
        self._weights[id(node)] = weight
        return node


def _yaml_load(text: str) -> Any:
    loader = _GuardedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


# --------------------------------------------------------------------------------------------- decoding


def _decode(data: str | bytes, findings: list[Finding]) -> str:
    if isinstance(data, str):
        raw = data.encode("utf-8", "surrogatepass")
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    else:
        raise SkillParseError("SKILL.md must be text or bytes", reason="not_utf8")
    if len(raw) > MAX_BYTES:
        raise SkillParseError(f"SKILL.md is larger than {MAX_BYTES} bytes", reason="too_large")
    if b"\x00" in raw:
        raise SkillParseError("SKILL.md contains NUL bytes (binary file?)", reason="binary_content")
    controls = sum(raw.count(bytes([b])) for b in _CONTROL_BYTES)
    if controls > max(8, len(raw) // 100):
        raise SkillParseError("SKILL.md contains many control characters (binary file?)", reason="binary_content")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
        findings.append(Finding("bom_removed", "a UTF-8 byte order mark was removed", 1, "info"))
    try:
        text = raw.decode("utf-8", "strict")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise SkillParseError(f"SKILL.md is not valid UTF-8 (byte {err.start})", reason="not_utf8", line=line) from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        findings.append(Finding("crlf_line_endings", "CRLF/CR line endings were normalised to LF", None, "info"))
    return text


# ------------------------------------------------------------------------------------------ frontmatter

# Linear: the value is taken whole and its trailing blanks stripped in code (a lazy ``(.*?)`` before
# ``[ \t]*$`` re-scanned every run of blanks once per character: quadratic on a long line).
_TOP_KEY_RE = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.-]*)[ \t]*:(?:[ \t]+(.*))?$")


def _top_key(line: str) -> tuple[str, str] | None:
    """(key, value) of a top-level ``key: value`` line, the value without trailing blanks; None otherwise."""
    m = _TOP_KEY_RE.match(line)
    if m is None:
        return None
    return m.group(1), (m.group(2) or "").rstrip(" \t")


def _split_frontmatter(text: str, findings: list[Finding]) -> tuple[str | None, str, int]:
    """Return (frontmatter or None, body, number of lines before the body)."""
    lines = text.split("\n")
    if not lines or lines[0].rstrip() != "---":
        return None, text, 0
    for i in range(1, len(lines)):
        if lines[i].rstrip() in ("---", "..."):
            return "\n".join(lines[1:i]), "\n".join(lines[i + 1 :]), i + 1
    findings.append(Finding("frontmatter_unclosed", "the opening '---' has no closing '---'; read as body", 1))
    return None, text, 0


def _repair(fm: str) -> tuple[str, list[int]]:
    """Quote top-level plain values that YAML would choke on (``description: Use when: x``)."""
    out: list[str] = []
    repaired: list[int] = []
    for i, line in enumerate(fm.split("\n")):
        check_budget()
        m = _top_key(line)
        value = m[1] if m else None
        if m and value and value[0] not in "\"'[{|>&*!" and (": " in value or value.endswith(":") or value[0] in "@`%"):
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'{m[0]}: "{escaped}"')
            repaired.append(i + 2)
        else:
            out.append(line)
    return "\n".join(out), repaired


def _fallback(fm: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for line in fm.split("\n"):
        m = _top_key(line)
        if not m or m[0] in data:
            continue
        value = m[1].strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        data[m[0]] = value or None
    return data


def _error_line(err: Exception) -> int | None:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    return mark.line + 2 if mark is not None else None


def _load_frontmatter(fm: str, findings: list[Finding]) -> Any:
    if len(fm.encode("utf-8", "surrogatepass")) > MAX_FRONTMATTER_BYTES:
        raise SkillParseError(
            f"frontmatter is larger than {MAX_FRONTMATTER_BYTES} bytes", reason="frontmatter_too_large", line=1
        )
    try:
        return _yaml_load(fm)
    except _HostileYAML as err:
        raise SkillParseError(f"refused frontmatter: {err}", reason="hostile_yaml", line=1) from None
    except (Exception, RecursionError) as err:
        first_err = err
    repaired, lines = _repair(fm)
    if lines:
        try:
            data = _yaml_load(repaired)
        except _HostileYAML as err:
            raise SkillParseError(f"refused frontmatter: {err}", reason="hostile_yaml", line=1) from None
        except (Exception, RecursionError):
            pass
        else:
            for line in lines:
                findings.append(
                    Finding("yaml_repaired", "quoted a value with an unquoted ':' in the frontmatter", line)
                )
            return data
    data = _fallback(fm)
    if data:
        findings.append(
            Finding(
                "yaml_fallback",
                f"frontmatter is not valid YAML ({type(first_err).__name__}); read top-level 'key: value' lines only",
                _error_line(first_err),
            )
        )
        return data
    err_line = _error_line(first_err)
    raise SkillParseError("frontmatter is not valid YAML", reason="invalid_yaml", line=err_line) from None


def frontmatter_name(head: str | bytes) -> str:
    """The ``name`` in a SKILL.md's frontmatter, read as :func:`parse_skill` reads it (the same splitter and
    the same hardened YAML loader, with its repairs) but without parsing the body: "" when there is no
    frontmatter, no name, or a frontmatter the parser would refuse. ``head`` may be the file's first bytes
    only (:data:`MAX_FRONTMATTER_BYTES` and a little more hold any frontmatter the parser accepts)."""
    text = head.decode("utf-8", errors="replace") if isinstance(head, bytes) else head
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    fm, _, _ = _split_frontmatter(text, [])
    if fm is None:
        return ""
    try:
        meta = _load_frontmatter(fm, [])
    except (SkillParseError, RecursionError):
        return ""
    if not isinstance(meta, dict):
        return ""
    name = _to_str(meta.get("name"), "name", [])
    return name.strip() if name else ""


def _plain(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of a YAML value (dates and odd scalars become strings)."""
    if depth > MAX_DEPTH:
        return None
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in value]
    return str(value)


def _to_str(value: Any, key: str, findings: list[Finding]) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float | _dt.date | _dt.datetime):
        text = str(value)
    else:
        text = str(_plain(value))
    findings.append(Finding("value_coerced", f"'{key}' is a {type(value).__name__}; converted to a string", None))
    return text


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:MAX_NAME_LEN].strip("-")


# ----------------------------------------------------------------------------------------------- body

_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*(.*)$")
_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*))?$")
_HR_RE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_BULLET_RE = re.compile(r"^([ \t]*)[-*+][ \t]+(.*)$")
_STEP_RE = re.compile(r"^([ \t]*)\d{1,9}[.)][ \t]+(.*)$")
_CHECKBOX_RE = re.compile(r"^\[[ xX]\][ \t]+")


@dataclass
class _Block:
    kind: str  # paragraph | bullet | step | code
    text: str
    line: int
    code: CodeBlock | None = None


@dataclass
class _RawSection:
    title: str | None
    level: int
    line: int
    parents: tuple[str, ...]
    lines: list[tuple[int, str]] = field(default_factory=list)


def _fence_close(line: str, fence: str) -> bool:
    stripped = line.strip()
    return (
        len(line) - len(line.lstrip(" ")) <= 3 and stripped == fence[0] * len(stripped) and len(stripped) >= len(fence)
    )


def _strip_closing_hashes(title: str) -> str:
    """A heading's text without its optional closing ``#`` sequence (``## Title ##`` -> ``Title``).

    Plain string work: the pattern ``(?:^|[ \t]+)#+[ \t]*$`` it replaces was quadratic on long blank runs.
    """
    text = title.rstrip(" \t")
    stem = text.rstrip("#")
    if stem != text and (not stem or stem[-1] in " \t"):
        text = stem
    return text.strip()


def _split_sections(body: str, offset: int) -> list[_RawSection]:
    sections = [_RawSection(None, 0, offset + 1, ())]
    stack: list[tuple[int, str]] = []
    fence: str | None = None
    for idx, line in enumerate(body.split("\n")):
        check_budget()
        lineno = offset + idx + 1
        if fence is not None:
            if _fence_close(line, fence):
                fence = None
        else:
            fm = _FENCE_RE.match(line)
            if fm and not (fm.group(1)[0] == "`" and "`" in fm.group(2)):
                fence = fm.group(1)
            else:
                hm = _HEADING_RE.match(line)
                if hm:
                    level = len(hm.group(1))
                    title = _strip_closing_hashes(hm.group(2) or "")
                    while stack and stack[-1][0] >= level:
                        stack.pop()
                    if len(sections) >= MAX_SECTIONS:
                        raise SkillParseError(
                            f"SKILL.md has more than {MAX_SECTIONS} headings", reason="too_complex", line=lineno
                        )
                    sections.append(_RawSection(title, level, lineno, tuple(t for _, t in stack)))
                    stack.append((level, title))
                    continue
        sections[-1].lines.append((lineno, line))
    return sections


def _blocks(lines: list[tuple[int, str]]) -> list[_Block]:
    blocks: list[_Block] = []
    para: list[str] = []
    para_line = 0
    item: _Block | None = None
    fence: str | None = None
    code: list[str] = []
    code_lang = ""
    code_line = 0

    def flush_para() -> None:
        nonlocal para
        if para:
            blocks.append(_Block("paragraph", " ".join(para), para_line))
            para = []

    for lineno, line in lines:
        check_budget()
        if fence is not None:
            if _fence_close(line, fence):
                cb = CodeBlock(code_lang, "\n".join(code), code_line)
                blocks.append(_Block("code", cb.code, code_line, cb))
                fence = None
            else:
                code.append(line)
            continue
        fm = _FENCE_RE.match(line)
        if fm and not (fm.group(1)[0] == "`" and "`" in fm.group(2)):
            flush_para()
            item = None
            fence, code, code_line = fm.group(1), [], lineno
            code_lang = fm.group(2).split()[0] if fm.group(2).split() else ""
            continue
        stripped = line.strip()
        if not stripped:
            flush_para()
            item = None
            continue
        if _HR_RE.match(line) or stripped.startswith("|"):
            flush_para()
            item = None
            continue
        bm = _BULLET_RE.match(line)
        sm = None if bm else _STEP_RE.match(line)
        if bm or sm:
            flush_para()
            kind = "bullet" if bm else "step"
            text = (bm or sm).group(2).strip()  # type: ignore[union-attr]
            if bm:
                text = _CHECKBOX_RE.sub("", text)
            item = _Block(kind, text, lineno)
            blocks.append(item)
            continue
        if item is not None:
            item.text = f"{item.text} {stripped}".strip()
            continue
        if not para:
            para_line = lineno
        para.append(stripped.lstrip("> ").strip() if stripped.startswith(">") else stripped)
    if fence is not None:
        cb = CodeBlock(code_lang, "\n".join(code), code_line)
        blocks.append(_Block("code", cb.code, code_line, cb))
    flush_para()
    return [b for b in blocks if b.text or b.kind == "code"]


def _fenced(cb: CodeBlock) -> str:
    return f"```{cb.language}\n{cb.code}\n```"


_LABEL_RE = re.compile(
    r"^[ \t]*(?:[-*][ \t]+)?(?:\*\*|__)?(Input|Output|User|Assistant|Before|After)(?:\*\*|__)?[ \t]*:"
    r"(?:\*\*|__)?[ \t]*(.*)$",
    re.IGNORECASE,
)
_INPUT_LABELS = {"input": "io", "user": "ua", "before": "ba"}
_OUTPUT_LABELS = {"output": "io", "assistant": "ua", "after": "ba"}


def _labelled_examples(section: Section, lines: list[tuple[int, str]]) -> list[ExplicitExample]:
    examples: list[ExplicitExample] = []
    # segments: (label, family, first line, collected lines)
    segments: list[tuple[str, str, int, list[str]]] = []
    current: list[str] | None = None
    fence: str | None = None
    for lineno, line in lines:
        check_budget()
        if fence is not None:
            if current is not None:
                current.append(line)
            if _fence_close(line, fence):
                fence = None
            continue
        m = _LABEL_RE.match(line)
        if m:
            label = m.group(1).lower()
            family = _INPUT_LABELS.get(label) or _OUTPUT_LABELS[label]
            current = [m.group(2).rstrip()] if m.group(2).strip() else []
            segments.append((label, family, lineno, current))
            continue
        fm = _FENCE_RE.match(line)
        if fm:
            fence = fm.group(1)
        if current is None:
            continue
        if not line.strip():
            # a blank line ends the segment unless the segment is still empty
            if current and any(x.strip() for x in current):
                current = None
            continue
        current.append(line)
    pending: tuple[str, int, str] | None = None
    for label, family, lineno, collected in segments:
        text = "\n".join(collected).strip()
        if label in _INPUT_LABELS:
            pending = (family, lineno, text) if text else None
        elif pending is not None and pending[0] == family and text:
            examples.append(ExplicitExample(pending[2], text, section.path, pending[1]))
            pending = None
        else:
            pending = None
    return examples


def _section_examples(section: Section, blocks: list[_Block]) -> list[ExplicitExample]:
    examples: list[ExplicitExample] = []
    if not any("example" in t.lower() for t in (*section.parents, section.title)):
        return examples
    for i, block in enumerate(blocks):
        if block.kind != "code" or block.code is None or not block.code.code.strip():
            continue
        prev = blocks[i - 1] if i > 0 else None
        question = prev.text if prev is not None and prev.kind == "paragraph" else section.title
        output = _fenced(block.code)
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        after = blocks[i + 2] if i + 2 < len(blocks) else None
        if nxt is not None and nxt.kind == "paragraph" and (after is None or after.kind != "code"):
            output = f"{output}\n\n{nxt.text}"
        if question.strip():
            examples.append(ExplicitExample(question.strip(), output, section.path, block.line))
    return examples


_REF_RE = re.compile(r"(?<![\w/.\-])(?:\./)?((scripts|references|assets)/[A-Za-z0-9_./\-]*[A-Za-z0-9_\-])")


def _references(body: str, offset: int) -> list[Reference]:
    refs: dict[str, Reference] = {}
    for idx, line in enumerate(body.split("\n")):
        check_budget()
        for m in _REF_RE.finditer(line):
            path = m.group(1)
            parts = path.split("/")
            if ".." in parts or "" in parts or path in refs:
                continue
            refs[path] = Reference(path=path, kind=m.group(2), line=offset + idx + 1)  # type: ignore[arg-type]
    return list(refs.values())


def _derive_description(sections: list[Section]) -> str | None:
    preferred = [s for s in sections if s.title.strip().lower() in ("description", "overview", "purpose", "summary")]
    for attr in ("paragraphs", "bullets", "steps"):
        for section in [*preferred, *sections]:
            for text in getattr(section, attr):
                text = text.strip()
                if len(text) >= 3:
                    if len(text) > DERIVED_DESCRIPTION_LEN:
                        cut = text[:DERIVED_DESCRIPTION_LEN]
                        text = (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip() + "…"
                    return text
    return None


# ----------------------------------------------------------------------------------------------- entry


def parse_skill(text_or_bytes: str | bytes, *, source: str | None = None, folder_name: str | None = None) -> Skill:
    """Parse SKILL.md content. Raises only :class:`SkillParseError` (with a ``reason``) on unrecoverable input."""
    try:
        return _parse(text_or_bytes, source=source, folder_name=folder_name)
    except SkillParseError:
        raise
    except RecursionError:
        raise SkillParseError("SKILL.md is nested too deeply", reason="hostile_yaml") from None
    except Exception as err:  # defensive: the contract is "only SkillParseError"
        raise SkillParseError(f"SKILL.md could not be parsed: {type(err).__name__}", reason="invalid_skill") from None


def _parse(data: str | bytes, *, source: str | None, folder_name: str | None) -> Skill:
    findings: list[Finding] = []
    text = _decode(data, findings)
    fm_text, body, offset = _split_frontmatter(text, findings)

    meta: dict[str, Any] = {}
    if fm_text is not None:
        loaded = _load_frontmatter(fm_text, findings)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise SkillParseError(
                f"frontmatter is a {type(loaded).__name__}, not a mapping", reason="frontmatter_not_mapping", line=2
            )
        meta = {str(k): v for k, v in loaded.items()}
    elif not body.strip():
        raise SkillParseError("SKILL.md has neither frontmatter nor a body", reason="no_frontmatter_or_body")
    else:
        findings.append(Finding("no_frontmatter", "SKILL.md has no YAML frontmatter; name and description derived", 1))

    raw_sections = _split_sections(body, offset)
    first_heading = next((s.title for s in raw_sections if s.title), None)

    # ---- name
    name = _to_str(meta.get("name"), "name", findings) if "name" in meta else None
    name = name.strip() if name else None
    if not name:
        candidates = [slugify(folder_name) if folder_name else "", slugify(first_heading or ""), "skill"]
        name = next(c for c in candidates if c)
        if fm_text is not None:
            findings.append(Finding("name_derived", f"frontmatter has no name; using {name!r}", None))
    else:
        if len(name) > MAX_NAME_LEN or not NAME_RE.match(name):
            findings.append(
                Finding(
                    "name_invalid",
                    f"name {name[:80]!r} must be 1-{MAX_NAME_LEN} chars of a-z, 0-9 and single inner hyphens",
                    None,
                )
            )
        if folder_name is not None and name != folder_name:
            findings.append(Finding("name_mismatch", f"name {name[:80]!r} differs from folder {folder_name!r}", None))

    # ---- sections
    sections: list[Section] = []
    examples: list[ExplicitExample] = []
    for raw in raw_sections:
        if raw.title is None:
            if not any(line.strip() for _, line in raw.lines):
                continue
            raw.title = name
            raw.line = next(n for n, line in raw.lines if line.strip())
        blocks = _blocks(raw.lines)
        section = Section(
            title=raw.title,
            level=raw.level,
            line=raw.line,
            text="\n".join(line for _, line in raw.lines).strip("\n"),
            parents=raw.parents,
            paragraphs=[b.text for b in blocks if b.kind == "paragraph"],
            bullets=[b.text for b in blocks if b.kind == "bullet"],
            steps=[b.text for b in blocks if b.kind == "step"],
            code_blocks=[b.code for b in blocks if b.kind == "code" and b.code is not None],
        )
        sections.append(section)
        labelled = _labelled_examples(section, raw.lines)
        examples.extend(labelled or _section_examples(section, blocks))

    # ---- description
    description = _to_str(meta.get("description"), "description", findings) if "description" in meta else None
    description = description.strip() if description else None
    if not description:
        description = _derive_description(sections)
        if not description:
            raise SkillParseError(
                "SKILL.md has no description and none can be derived from the body", reason="missing_description"
            )
        findings.append(Finding("description_derived", "description derived from the first paragraph of the body"))
    elif len(description) > MAX_DESCRIPTION_LEN:
        findings.append(
            Finding("description_too_long", f"description is {len(description)} chars (max {MAX_DESCRIPTION_LEN})")
        )

    license_ = _to_str(meta.get("license"), "license", findings)
    compatibility = _to_str(meta.get("compatibility"), "compatibility", findings)
    if compatibility is not None and len(compatibility) > MAX_COMPATIBILITY_LEN:
        findings.append(
            Finding(
                "compatibility_too_long",
                f"compatibility is {len(compatibility)} chars (max {MAX_COMPATIBILITY_LEN})",
            )
        )

    metadata: dict[str, str] = {}
    extra: dict[str, Any] = {}
    raw_meta = meta.get("metadata")
    if isinstance(raw_meta, dict):
        for k, v in raw_meta.items():
            if isinstance(k, str) and isinstance(v, str):
                metadata[k] = v
            else:
                metadata[str(k)] = v if isinstance(v, str) else str(_plain(v))
                findings.append(Finding("metadata_coerced", f"metadata entry {str(k)[:80]!r} converted to strings"))
    elif raw_meta is not None:
        extra["metadata"] = _plain(raw_meta)
        findings.append(Finding("metadata_invalid", "metadata must be a mapping of strings; kept in extra"))

    allowed_tools: list[str] = []
    raw_tools = meta.get("allowed-tools")
    if isinstance(raw_tools, str):
        allowed_tools = raw_tools.split()
    elif isinstance(raw_tools, list):
        allowed_tools = [str(_plain(t)).strip() for t in raw_tools if t is not None and str(_plain(t)).strip()]
        findings.append(Finding("allowed_tools_list", "allowed-tools is a YAML list; the spec wants a string", None))
    elif raw_tools is not None:
        allowed_tools = str(_plain(raw_tools)).split()
        findings.append(Finding("value_coerced", "'allowed-tools' converted to a string"))

    for key, value in meta.items():
        if key not in KNOWN_KEYS:
            extra[key] = _plain(value)
            findings.append(Finding("unknown_key", f"frontmatter key {key[:80]!r} is not in the spec; kept in extra"))

    return Skill(
        name=name,
        description=description,
        body=body,
        license=license_,
        compatibility=compatibility,
        metadata=metadata,
        allowed_tools=allowed_tools,
        extra=extra,
        sections=sections,
        examples=examples,
        references=_references(body, offset),
        findings=findings,
        source=source,
    )
