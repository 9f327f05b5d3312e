"""Evaluation cases: the held-out split and agentskills evals.json, valid and malformed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skill_adapter.core.errors import InvalidParameterError
from skill_adapter.evaluation.cases import held_out_cases, load_evals_file, parse_evals


def test_held_out_cases_read_the_saved_split(tmp_path: Path) -> None:
    record = {
        "prompt": [{"role": "user", "content": "How do I format a commit?"}],
        "completion": [{"role": "assistant", "content": "type(scope): summary"}],
        "generator": "procedure",
        "section": "Format",
    }
    (tmp_path / "held_out.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    [case] = held_out_cases(tmp_path)
    assert (case.id, case.prompt, case.reference, case.exact) == (
        "held-out-1",
        "How do I format a commit?",
        "type(scope): summary",
        True,
    )
    assert case.section == "Format" and case.generator == "procedure"


def test_evals_json_in_the_agentskills_format() -> None:
    cases = parse_evals(
        {
            "skill_name": "csv-analyzer",
            "evals": [
                {"id": 1, "prompt": "Top 3 months?", "expected_output": "A bar chart.", "files": ["a.csv"]},
                {"id": "x", "prompt": "Say ok", "expected_output": "ok", "exact": True},
            ],
        }
    )
    assert [(c.id, c.exact, c.files) for c in cases] == [("1", False, ["a.csv"]), ("x", True, [])]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ([], '"evals" list'),
        ({"evals": []}, "empty"),
        ({"evals": ["text"]}, "case 0 is not an object"),
        ({"evals": [{"prompt": "", "expected_output": "x"}]}, '"prompt"'),
        ({"evals": [{"prompt": "p"}]}, '"expected_output"'),
        ({"evals": [{"prompt": "p", "expected_output": "x", "exact": "yes"}]}, '"exact"'),
        ({"evals": [{"prompt": "p", "expected_output": "x", "files": "a.csv"}]}, '"files"'),
        ({"evals": [{"id": 1, "prompt": "p", "expected_output": "x"}] * 2}, "duplicate id"),
    ],
)
def test_malformed_evals_are_refused_with_the_place(data: object, fragment: str) -> None:
    with pytest.raises(InvalidParameterError) as info:
        parse_evals(data)
    assert info.value.code == "invalid_evals"
    assert fragment in info.value.message


def test_evals_file_missing_or_not_json(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError) as info:
        load_evals_file(tmp_path / "evals.json")
    assert info.value.code == "evals_not_found"
    (tmp_path / "evals.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InvalidParameterError) as info:
        load_evals_file(tmp_path / "evals.json")
    assert info.value.code == "invalid_evals"


def test_adapter_folder_must_hold_safetensors_weights(tmp_path: Path) -> None:
    from skill_adapter.core.errors import EvaluationError
    from skill_adapter.evaluation.adapters import check_adapter_folder

    with pytest.raises(EvaluationError) as info:
        check_adapter_folder(tmp_path)
    assert info.value.code == "adapter_missing"
    (tmp_path / "adapter_config.json").write_text("{}", encoding="utf-8")
    (tmp_path / "training_args.bin").write_bytes(b"0")  # the Trainer's arguments, never loaded as weights
    with pytest.raises(EvaluationError) as info:
        check_adapter_folder(tmp_path)
    assert info.value.code == "adapter_not_safetensors"
    (tmp_path / "adapter_model.safetensors").write_bytes(b"0")
    check_adapter_folder(tmp_path)
    (tmp_path / "adapter_model.bin").write_bytes(b"0")
    with pytest.raises(EvaluationError) as info:
        check_adapter_folder(tmp_path)
    assert "adapter_model.bin" in info.value.message


def test_checkable_expectations_are_parsed_and_checked() -> None:
    from skill_adapter.evaluation.cases import check

    cases = parse_evals(
        {
            "evals": [
                {
                    "prompt": "Write the commit message",
                    "expected_output": "A conventional commit",
                    "expectations": [
                        "The summary is in the imperative mood",
                        {"type": "regex", "pattern": "^(feat|fix)(\\([a-z]+\\))?: "},
                        {"type": "contains", "value": "PARSER"},
                        {"type": "not_contains", "value": "sorry"},
                    ],
                }
            ]
        }
    )
    checks = cases[0].expectations
    assert [c["type"] for c in checks] == ["regex", "contains", "not_contains"]  # the sentence is a note
    assert [check(c, "fix(parser): handle empty input") for c in checks] == [True, True, True]
    assert [check(c, "Sorry, I fixed the Parser") for c in checks] == [False, True, False]


@pytest.mark.parametrize(
    "expectation",
    [{"type": "regex", "pattern": "("}, {"type": "equals", "value": "x"}, {"type": "contains"}, 3],
)
def test_a_malformed_expectation_is_refused_with_its_case(expectation: object) -> None:
    with pytest.raises(InvalidParameterError) as refused:
        parse_evals({"evals": [{"prompt": "p", "expected_output": "e", "expectations": [expectation]}]})
    assert refused.value.code == "invalid_evals" and "case 0" in refused.value.message
