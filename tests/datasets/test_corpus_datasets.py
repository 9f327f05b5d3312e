"""Datasets built from the real-world corpus (skills other people wrote)."""

from __future__ import annotations

from pathlib import Path

import pytest

from skill_adapter.assets import TINY_MODEL_DIR
from skill_adapter.datasets.builder import build_dataset
from skill_adapter.datasets.stats import dataset_stats
from skill_adapter.skills import load_skill_path

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "skills"
if not CORPUS.is_dir():
    pytest.skip(f"corpus folder {CORPUS} is absent", allow_module_level=True)

SKILL_FILES = sorted(CORPUS.rglob("SKILL.md"))


def follows_spec(path: Path) -> bool:
    return all(f.severity == "info" for f in load_skill_path(path).findings)


def test_most_of_the_corpus_follows_the_spec() -> None:
    assert sum(follows_spec(p) for p in SKILL_FILES) >= 10


@pytest.mark.parametrize("path", SKILL_FILES, ids=lambda p: p.parent.name)
def test_builds_a_dataset(path: Path) -> None:
    skill = load_skill_path(path)
    dataset = build_dataset(skill, seed=42)
    assert dataset.train and dataset.held_out
    if follows_spec(path):
        assert len(dataset.train) >= 10 and len(dataset.held_out) >= 1
    assert build_dataset(skill, seed=42).train == dataset.train
    stats = dataset_stats(dataset, tokenizer_json=TINY_MODEL_DIR / "tokenizer.json", max_seq_length=2048)
    assert stats["train_examples"] == len(dataset.train)


def test_the_74kb_claude_api_skill() -> None:
    path = CORPUS / "anthropics" / "claude-api" / "SKILL.md"
    assert path.stat().st_size > 70_000
    dataset = build_dataset(load_skill_path(path), seed=1)
    assert len(dataset.train) >= 50
    assert len({e.section for e in dataset.train}) >= 20
