"""Completion markers: resume only from complete checkpoints; torn ones are skipped."""

from __future__ import annotations

from pathlib import Path

from skill_adapter.training.checkpoints import is_complete, latest_complete_checkpoint, mark_complete


def test_latest_complete_checkpoint_skips_torn_and_foreign_folders(tmp_path: Path) -> None:
    for step in (5, 10, 15):
        (tmp_path / f"checkpoint-{step}").mkdir()
    mark_complete(tmp_path / "checkpoint-5", step=5)
    mark_complete(tmp_path / "checkpoint-10", step=10)
    (tmp_path / "checkpoint-20-old").mkdir()
    (tmp_path / "final").mkdir()
    mark_complete(tmp_path / "final", step=15)
    # checkpoint-15 has no marker: a save interrupted by a crash
    assert latest_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert is_complete(tmp_path / "checkpoint-10") and not is_complete(tmp_path / "checkpoint-15")
    assert not list(tmp_path.glob("checkpoint-10/.*tmp"))


def test_no_checkpoint(tmp_path: Path) -> None:
    assert latest_complete_checkpoint(tmp_path) is None
    assert latest_complete_checkpoint(tmp_path / "missing") is None


def test_numeric_order_not_lexical(tmp_path: Path) -> None:
    for step in (9, 100):
        (tmp_path / f"checkpoint-{step}").mkdir()
        mark_complete(tmp_path / f"checkpoint-{step}", step=step)
    assert latest_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-100"
