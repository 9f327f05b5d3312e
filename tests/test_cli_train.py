"""`skill-adapter train` on the tiny model: it says what it is doing before the first step, and ends with
the adapter's path and the same prompt answered by the base model and by the adapter."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from skill_adapter.cli import main
from tests.helpers.paths import EXAMPLE_SKILLS

pytestmark = pytest.mark.slow


def test_train_prints_progress_the_adapter_and_a_base_vs_adapter_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(EXAMPLE_SKILLS / "commit-messages", tmp_path / "skills" / "commit-messages")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert main(["train", "skills/commit-messages/SKILL.md", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("job train-") and lines[0].endswith("on tiny")
    before_training = "\n".join(lines[: next(i for i, ln in enumerate(lines) if ln.startswith("succeeded"))])
    for step in ("starting the training process", "parsing", "dataset:", "importing torch", "loading", "LoRA adapter"):
        assert step in before_training, (step, out)
    adapter_line = next(line for line in lines if line.startswith("succeeded: adapter in "))
    adapter = Path(adapter_line.removeprefix("succeeded: adapter in "))
    assert not adapter.is_absolute() and str(adapter).startswith("checkpoints/train-")  # relative to the cwd
    assert (tmp_path / adapter / "adapter_model.safetensors").is_file()
    shown = [line.strip().split(":", 1)[0] for line in lines if line.startswith("  ")]
    assert shown[-3:] == ["prompt", "base", "adapter"]
    assert lines[-1].startswith("load it: PeftModel.from_pretrained(") and str(adapter) in lines[-1]
