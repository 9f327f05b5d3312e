"""Where evaluation cases come from: the job's held-out split, or an agentskills ``evals/evals.json``.

Held-out examples have exact reference answers (the dataset builder wrote them), so every metric applies.
An ``evals.json`` case's ``expected_output`` is usually a description of a good answer, not the answer:
only cases that mark it exact (``"exact": true``) count for accuracy, BLEU and chrF; every case gets each
arm's output and the perplexity of ``expected_output``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from skill_adapter.core.errors import InvalidParameterError

MAX_EVAL_CASES = 1000
MAX_PATTERN_CHARS = 500
CHECK_TYPES = ("contains", "not_contains", "regex")


def check(expectation: dict[str, Any], output: str) -> bool:
    """Whether ``output`` meets one checkable expectation (validated by :func:`parse_expectation`)."""
    kind = expectation["type"]
    if kind == "regex":
        flags = re.IGNORECASE if expectation.get("ignore_case") else 0
        return re.search(expectation["pattern"], output, flags) is not None
    value = expectation["value"]
    found = value.lower() in output.lower() if expectation.get("ignore_case", True) else value in output
    return found if kind == "contains" else not found


def parse_expectation(item: Any, where: str) -> dict[str, Any] | None:
    """A checkable expectation, None for a plain-words one (a grader's note, not checked here); raises
    ``ValueError`` with a message for a malformed one."""
    if isinstance(item, str):
        return None
    if not isinstance(item, dict) or item.get("type") not in CHECK_TYPES:
        raise ValueError(f'{where}: an expectation is a sentence or an object with "type" one of {list(CHECK_TYPES)}')
    key = "pattern" if item["type"] == "regex" else "value"
    text = item.get(key)
    if not isinstance(text, str) or not text or len(text) > MAX_PATTERN_CHARS:
        raise ValueError(
            f'{where}: a {item["type"]} expectation needs a "{key}" string of 1 to {MAX_PATTERN_CHARS} characters'
        )
    if item["type"] == "regex":
        try:
            re.compile(text)
        except re.error as exc:
            raise ValueError(f"{where}: the regex {text!r} does not compile: {exc}") from None
    ignore_case = item.get("ignore_case", item["type"] != "regex")
    if not isinstance(ignore_case, bool):
        raise ValueError(f'{where}: "ignore_case" must be true or false')
    return {"type": item["type"], key: text, "ignore_case": ignore_case}


@dataclass(frozen=True)
class EvalCase:
    id: str
    prompt: str
    reference: str
    exact: bool
    section: str | None = None
    generator: str | None = None
    files: list[str] = field(default_factory=list)
    expectations: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def held_out_cases(dataset_dir: Path) -> list[EvalCase]:
    """The builder's held-out split saved with the job (``<job>/dataset/held_out.jsonl``)."""
    path = dataset_dir / "held_out.jsonl"
    cases = []
    with path.open(encoding="utf-8") as handle:
        for index, line in enumerate(handle, start=1):
            record = json.loads(line)
            cases.append(
                EvalCase(
                    id=f"held-out-{index}",
                    prompt=record["prompt"][0]["content"],
                    reference=record["completion"][0]["content"],
                    exact=True,
                    section=record.get("section"),
                    generator=record.get("generator"),
                )
            )
    return cases


def parse_evals(data: Any) -> list[EvalCase]:
    """Validate an ``evals.json`` document; a malformed one is a 422 naming the broken case and field."""

    def bad(message: str) -> InvalidParameterError:
        return InvalidParameterError(f"evals: {message}", code="invalid_evals", field="evals")

    if not isinstance(data, dict) or not isinstance(data.get("evals"), list):
        raise bad('expected an object with an "evals" list, as in evals/evals.json')
    if not data["evals"]:
        raise bad('the "evals" list is empty')
    if len(data["evals"]) > MAX_EVAL_CASES:
        raise bad(f"at most {MAX_EVAL_CASES} cases, got {len(data['evals'])}")
    cases, seen = [], set()
    for index, item in enumerate(data["evals"]):
        where = f"case {index}"
        if not isinstance(item, dict):
            raise bad(f"{where} is not an object")
        prompt, expected = item.get("prompt"), item.get("expected_output")
        if not isinstance(prompt, str) or not prompt.strip():
            raise bad(f'{where} needs a non-empty string "prompt"')
        if not isinstance(expected, str) or not expected.strip():
            raise bad(f'{where} needs a non-empty string "expected_output"')
        exact = item.get("exact", False)
        if not isinstance(exact, bool):
            raise bad(f'{where}: "exact" must be true or false')
        files = item.get("files", [])
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise bad(f'{where}: "files" must be a list of paths')
        raw_expectations = item.get("expectations", [])
        if not isinstance(raw_expectations, list):
            raise bad(f'{where}: "expectations" must be a list')
        try:
            parsed = [parse_expectation(e, where) for e in raw_expectations]
        except ValueError as exc:
            raise bad(str(exc)) from None
        expectations = [e for e in parsed if e is not None]
        case_id = str(item.get("id", index + 1))
        if case_id in seen:
            raise bad(f"{where}: duplicate id {case_id!r}")
        seen.add(case_id)
        cases.append(
            EvalCase(id=case_id, prompt=prompt, reference=expected, exact=exact, files=files, expectations=expectations)
        )
    return cases


def skill_evals_file(skill_file: Path) -> Path:
    """Where a skill keeps its own test cases."""
    return skill_file.parent / "evals" / "evals.json"


def load_evals_file(path: Path) -> list[EvalCase]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidParameterError(
            f"source 'evals' needs {path}, which does not exist; pass the cases inline as \"evals\"",
            code="evals_not_found",
            field="source",
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidParameterError(f"{path} is not valid JSON: {exc}", code="invalid_evals", field="evals") from None
    return parse_evals(data)
