"""`skill-adapter preview` prints what the API's preview returns, and fails with a code on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skill_adapter.cli import main


def test_preview_prints_skill_findings_stats_and_examples(
    skills_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["preview", str(skills_root / "commit-messages" / "SKILL.md"), "--examples", "3"]) == 0
    out = capsys.readouterr().out
    assert "skill: commit-messages" in out
    assert "findings: 0" in out
    assert "train, " in out and "held-out" in out
    assert "over max_seq_length 2048" in out
    assert out.count("\n- [") == 3


def test_preview_json_matches_the_api_shape(
    skills_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["preview", str(skills_root / "release-notes"), "--json", "--seed", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) >= {"skill", "findings", "dataset_stats", "examples"}
    assert data["dataset_stats"]["seed"] == 5
    assert data["dataset_stats"]["train_examples"] >= 10
    # What the distill recipe will send to the teacher: known prompts with their source and split.
    prompts = data["distill"]["prompts"]
    assert {p["source"] for p in prompts} >= {"trigger", "off_skill"}
    assert {p["split"] for p in prompts} == {"train", "held_out"}
    assert data["distill"]["skill_truncated_for_teacher"] is False


def test_preview_of_an_unusable_file_exits_2_with_the_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "SKILL.md"
    bad.write_bytes(b"\x00\xff\x00 binary")
    assert main(["preview", str(bad)]) == 2
    assert "skill_invalid" in capsys.readouterr().err
    assert main(["preview", str(tmp_path / "missing.md")]) == 2
    assert "skill_not_found" in capsys.readouterr().err
