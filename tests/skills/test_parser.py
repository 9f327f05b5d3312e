"""parse_skill: lenient repairs become findings, unrecoverable input raises SkillParseError with a reason."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skill_adapter.core.errors import SkillParseError
from skill_adapter.skills import parse_skill


def codes(skill) -> list[str]:
    return [f.code for f in skill.findings]


def reason_of(data, **kwargs) -> str:
    with pytest.raises(SkillParseError) as info:
        parse_skill(data, **kwargs)
    return info.value.reason


BASIC = """---
name: pdf-tools
description: Work with PDF files. Use when the user mentions PDFs.
license: Apache-2.0
---

Intro text before any heading.

# PDF Tools

Some paragraph
that continues.

## Steps

1. Open the file
   with care.
2) Save it.

## Checklist

- [ ] first item
- second item
  continued here
* third

```python
# not a heading
print("hi")
```

See [the guide](references/guide.md) and run `scripts/fill.py`, also ./assets/logo.png.
Again references/guide.md and https://example.com/scripts/remote.py.
"""


# ------------------------------------------------------------------------------------------------- happy path


def test_basic_fields_and_sections() -> None:
    skill = parse_skill(BASIC, source="mem", folder_name="pdf-tools")
    assert skill.name == "pdf-tools"
    assert skill.description.startswith("Work with PDF")
    assert skill.license == "Apache-2.0"
    assert skill.source == "mem"
    assert codes(skill) == []
    titles = [(s.title, s.level, s.line) for s in skill.sections]
    assert titles == [("pdf-tools", 0, 7), ("PDF Tools", 1, 9), ("Steps", 2, 14), ("Checklist", 2, 20)]
    pdf, steps, checklist = skill.sections[1:]
    assert pdf.paragraphs == ["Some paragraph that continues."]
    assert steps.parents == ("PDF Tools",)
    assert steps.path == "PDF Tools > Steps"
    assert steps.steps == ["Open the file with care.", "Save it."]
    assert checklist.bullets == ["first item", "second item continued here", "third"]
    assert len(checklist.code_blocks) == 1
    block = checklist.code_blocks[0]
    assert block.language == "python"
    assert block.line == 27
    assert "# not a heading" in block.code


def test_references_deduplicated_with_lines() -> None:
    skill = parse_skill(BASIC)
    refs = [(r.path, r.kind, r.line, r.text, r.exists) for r in skill.references]
    assert refs == [
        ("references/guide.md", "references", 32, None, None),
        ("scripts/fill.py", "scripts", 32, None, None),
        ("assets/logo.png", "assets", 32, None, None),
    ]


def test_input_output_examples() -> None:
    text = """---
name: greeter
description: Greets people.
---
# Usage

Input: say hi to Bob
Output: Hi Bob!

**Input:** translate "chat"
**Output:**
```
cat
```

Bad: rude reply
Good: polite reply

User: hello
Assistant: hello there
"""
    skill = parse_skill(text)
    pairs = [(e.input, e.output, e.line) for e in skill.examples]
    assert pairs == [
        ("say hi to Bob", "Hi Bob!", 7),
        ('translate "chat"', "```\ncat\n```", 10),
        ("hello", "hello there", 19),
    ]
    assert all(e.section == "Usage" for e in skill.examples)


def test_example_section_with_code_block() -> None:
    text = """---
name: sql-helper
description: Writes SQL.
---
# SQL

## Examples

### Example: count users

How many users signed up today?

```sql
SELECT count(*) FROM users WHERE created = today();
```

This counts today's sign-ups.
"""
    skill = parse_skill(text)
    assert len(skill.examples) == 1
    ex = skill.examples[0]
    assert ex.input == "How many users signed up today?"
    assert ex.output.startswith("```sql\nSELECT count(*)")
    assert ex.output.endswith("This counts today's sign-ups.")
    assert ex.section == "SQL > Examples > Example: count users"
    assert ex.line == 13


# --------------------------------------------------------------------------------------------- lenient cases


def test_bom_and_crlf() -> None:
    data = b"\xef\xbb\xbf---\r\nname: a-b\r\ndescription: d\r\n---\r\n# Title\r\ntext\r\n"
    skill = parse_skill(data)
    assert {"bom_removed", "crlf_line_endings"} <= set(codes(skill))
    assert skill.sections[0].line == 5
    assert "\r" not in skill.body


def test_unquoted_colon_repaired() -> None:
    text = "---\nname: x-y\ndescription: Use when: the user asks: things\n---\n# T\nbody\n"
    skill = parse_skill(text)
    assert skill.description == "Use when: the user asks: things"
    repaired = [f for f in skill.findings if f.code == "yaml_repaired"]
    assert [f.line for f in repaired] == [3]


def test_unparseable_yaml_falls_back_to_lines() -> None:
    text = "---\nname: x-y\ndescription: ok\nbroken: [unclosed\n  - : :\n---\n# T\nbody\n"
    skill = parse_skill(text)
    assert skill.name == "x-y"
    assert skill.description == "ok"
    assert "yaml_fallback" in codes(skill)


def test_allowed_tools_list_and_string() -> None:
    as_list = parse_skill("---\nname: t\ndescription: d\nallowed-tools:\n  - Read\n  - Bash\n---\nbody\n")
    assert as_list.allowed_tools == ["Read", "Bash"]
    assert "allowed_tools_list" in codes(as_list)
    as_str = parse_skill("---\nname: t\ndescription: d\nallowed-tools: Read Bash(git:*)\n---\nbody\n")
    assert as_str.allowed_tools == ["Read", "Bash(git:*)"]
    assert codes(as_str) == []


def test_name_mismatch_and_invalid() -> None:
    skill = parse_skill("---\nname: Bad--Name\ndescription: d\n---\nbody\n", folder_name="good-name")
    assert skill.name == "Bad--Name"
    assert {"name_invalid", "name_mismatch"} <= set(codes(skill))
    for bad in ("-lead", "trail-", "a" * 65, "under_score"):
        assert "name_invalid" in codes(parse_skill(f"---\nname: {bad}\ndescription: d\n---\nbody\n"))


def test_long_description_kept_whole() -> None:
    desc = "word " * 300
    skill = parse_skill(f"---\nname: t\ndescription: {desc}\n---\nbody\n")
    assert skill.description == desc.strip()
    assert "description_too_long" in codes(skill)


def test_extra_keys_metadata_and_coercion() -> None:
    text = (
        "---\nname: t\ndescription: d\nversion: 1.2\nauthor: Ann\ndate: 2024-01-02\n"
        "metadata:\n  stars: 5\n  owner: me\ncompatibility: 3\n---\nbody\n"
    )
    skill = parse_skill(text)
    assert skill.extra == {"version": 1.2, "author": "Ann", "date": "2024-01-02"}
    assert skill.metadata == {"stars": "5", "owner": "me"}
    assert skill.compatibility == "3"
    found = codes(skill)
    assert found.count("unknown_key") == 3
    assert "metadata_coerced" in found
    assert "value_coerced" in found


def test_no_frontmatter_imports_with_warning() -> None:
    text = "# My Great Skill\n\nThis skill does great things for you.\n\n## Use\n- a\n"
    skill = parse_skill(text)
    assert skill.name == "my-great-skill"
    assert skill.description == "This skill does great things for you."
    assert {"no_frontmatter", "description_derived"} <= set(codes(skill))
    assert parse_skill(text, folder_name="folder-name").name == "folder-name"
    assert parse_skill("just words here\n").name == "skill"


def test_missing_name_and_description_derived() -> None:
    skill = parse_skill("---\nlicense: MIT\n---\n# Heading\n\nFirst paragraph.\n", folder_name="my-skill")
    assert skill.name == "my-skill"
    assert skill.description == "First paragraph."
    assert {"name_derived", "description_derived"} <= set(codes(skill))


def test_unclosed_frontmatter_read_as_body() -> None:
    skill = parse_skill("---\nname: x\n\nSome text.\n")
    assert "frontmatter_unclosed" in codes(skill)


# ------------------------------------------------------------------------------------------------ fatal cases


def test_binary_content() -> None:
    assert reason_of(b"---\nname: x\x00\n---\n") == "binary_content"
    assert reason_of(bytes(range(1, 32)) * 20) == "binary_content"


def test_not_utf8() -> None:
    data = "---\nname: café\ndescription: d\n---\nbody\n".encode("latin-1")
    with pytest.raises(SkillParseError) as info:
        parse_skill(data)
    assert info.value.reason == "not_utf8"
    assert info.value.line == 2
    assert info.value.code == "skill_invalid"


def test_too_large() -> None:
    assert reason_of(b"a" * (1024 * 1024 + 1)) == "too_large"


def test_frontmatter_not_mapping() -> None:
    assert reason_of("---\n- a\n- b\n---\nbody\n") == "frontmatter_not_mapping"
    assert reason_of("---\njust a string\n---\nbody\n") == "frontmatter_not_mapping"


def test_python_tag_refused() -> None:
    assert reason_of("---\nname: x\ndescription: !!python/object/apply:os.system ['true']\n---\nb\n") == "hostile_yaml"
    assert reason_of("---\nname: !custom x\ndescription: d\n---\nb\n") == "hostile_yaml"


def test_alias_bomb_refused_fast() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdef", "bcdefg", strict=True):
        lines.append(f"{cur}: &{cur} [{','.join(['*' + prev] * 9)}]")
    text = "---\nname: bomb\ndescription: d\n" + "\n".join(lines) + "\n---\nbody\n"
    start = time.perf_counter()
    assert reason_of(text) == "hostile_yaml"
    assert time.perf_counter() - start < 5


def test_too_many_aliases_and_deep_nesting_refused() -> None:
    many = "x: &x 1\nl: [" + ",".join(["*x"] * 150) + "]\n"
    assert reason_of(f"---\nname: n\ndescription: d\n{many}---\nb\n") == "hostile_yaml"
    deep = "x: " + "[" * 500 + "]" * 500 + "\n"
    assert reason_of(f"---\nname: n\ndescription: d\n{deep}---\nb\n") == "hostile_yaml"


def test_frontmatter_too_large() -> None:
    text = "---\nname: n\ndescription: d\nfiller: " + "x" * 70_000 + "\n---\nbody\n"
    assert reason_of(text) == "frontmatter_too_large"


def test_invalid_yaml_without_usable_lines() -> None:
    with pytest.raises(SkillParseError) as info:
        parse_skill('---\n  "unclosed\n  [x\n---\nbody\n')
    assert info.value.reason == "invalid_yaml"


def test_missing_description_and_empty() -> None:
    assert reason_of("---\nname: n\n---\n# Only a heading\n") == "missing_description"
    assert reason_of("") == "no_frontmatter_or_body"
    assert reason_of(" \n\n\t\n") == "no_frontmatter_or_body"


# ------------------------------------------------------------------------------------------------ properties

DEADLINE = timedelta(seconds=2)


def _check(data) -> None:
    try:
        parse_skill(data, folder_name="f")
    except SkillParseError as err:
        assert err.reason


@settings(deadline=DEADLINE, max_examples=200)
@given(st.text())
def test_arbitrary_text_only_raises_parse_error(text: str) -> None:
    _check(text)


@settings(deadline=DEADLINE, max_examples=200)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_only_raises_parse_error(data: bytes) -> None:
    _check(data)


_yaml_chars = st.sampled_from([*"abc -:'\"[]{}&*!|>#%@`,?\n\t\\", "name", "description", "allowed-tools", "  "])
_yaml_text = st.lists(_yaml_chars, max_size=80).map("".join)


@settings(deadline=DEADLINE, max_examples=300)
@given(_yaml_text, st.text(max_size=200))
def test_frontmatter_shaped_text_only_raises_parse_error(frontmatter: str, body: str) -> None:
    _check(f"---\n{frontmatter}\n---\n{body}")


@settings(deadline=DEADLINE, max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(["name", "description", "license", "metadata", "allowed-tools", "compatibility", "x"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
            max_leaves=10,
        ),
    ),
    st.text(max_size=200),
)
def test_structured_frontmatter_only_raises_parse_error(data: dict, body: str) -> None:
    import yaml

    _check("---\n" + yaml.safe_dump(data, allow_unicode=True) + "---\n" + body)
