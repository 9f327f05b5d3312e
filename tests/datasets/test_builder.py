"""Dataset builder on the project's own Skill fixtures: every generator, determinism, drops, split, stats."""

from __future__ import annotations

from pathlib import Path

import pytest

from skill_adapter.assets import TINY_MODEL_DIR
from skill_adapter.core.errors import DatasetError
from skill_adapter.datasets.builder import (
    GENERATORS,
    MAX_COMPLETION_CHARS,
    Example,
    build_dataset,
    read_jsonl,
    split_examples,
    write_jsonl,
)
from skill_adapter.datasets.stats import dataset_stats
from skill_adapter.skills.model import CodeBlock, ExplicitExample, Reference, Section, Skill


def make_skill() -> Skill:
    sections = [
        Section(
            "Overview",
            1,
            5,
            "text",
            paragraphs=[
                "Review pull requests so that reviewers trust the result and authors learn from every comment."
            ],
        ),
        Section(
            "Steps",
            2,
            9,
            "text",
            parents=("Overview",),
            steps=[
                "Read the description and the linked issue.",
                "Run the tests locally.",
                "Comment on behaviour before style.",
                "Approve only when every thread is resolved.",
            ],
        ),
        Section(
            "Rules",
            2,
            20,
            "text",
            parents=("Overview",),
            bullets=[
                "Be specific: quote the line you mean.",
                "Suggest a fix with each problem.",
                "Never block on personal taste.",
            ],
        ),
        Section(
            "Tone",
            2,
            30,
            "text",
            parents=("Overview",),
            paragraphs=[
                "Write as a colleague. Ask questions rather than give orders, and thank the author for the work."
            ],
        ),
        Section(
            "Example",
            2,
            40,
            "text",
            parents=("Overview",),
            code_blocks=[
                CodeBlock("markdown", "**nit:** rename `tmp` to `pending_jobs` so the loop reads clearly.", 42)
            ],
        ),
        Section(
            "Edge cases",
            2,
            50,
            "text",
            parents=("Overview",),
            bullets=["Huge diffs: ask for a split.", "Generated files: skip them."],
        ),
    ]
    return Skill(
        name="code-review",
        description="Reviews pull requests kindly and precisely. Use when the user asks for a code review, "
        "wants feedback on a diff, or asks how to comment on a pull request.",
        body="...",
        sections=sections,
        examples=[
            ExplicitExample(
                "Review: `x=1;y=2`", "Split the two assignments onto their own lines.", "Overview > Example", 44
            )
        ],
        references=[
            Reference(
                "references/checklist.md",
                "references",
                60,
                text="# Security\n\nCheck every input that crosses a trust boundary and "
                "every query built from strings.\n\n# Performance\n\nLook for loops that "
                "query the database once per item.",
                exists=True,
            )
        ],
    )


def test_every_generator_contributes_and_tags_its_examples() -> None:
    dataset = build_dataset(make_skill(), seed=7)
    examples = dataset.train + dataset.held_out
    assert {e.generator for e in examples} == set(GENERATORS)
    assert all(e.section for e in examples)
    kinds = {e.kind for e in examples if e.generator == "trigger"}
    assert kinds == {"apply", "near_miss", "unrelated"}
    reference = [e for e in examples if e.generator == "reference"]
    assert {e.section for e in reference} == {"references/checklist.md"}
    assert any("trust boundary" in e.completion for e in reference)
    explicit = [e for e in examples if e.generator == "explicit"]
    assert any(e.prompt == "Review: `x=1;y=2`" for e in explicit)
    assert any(e.completion.startswith("```markdown") for e in explicit)
    steps = [e for e in examples if e.section == "Overview > Steps"]
    assert steps and all(e.completion.startswith("1. Read the description") for e in steps)


def test_unrelated_prompts_do_not_apply_the_skill() -> None:
    dataset = build_dataset(make_skill(), seed=7)
    for example in dataset.train + dataset.held_out:
        if example.kind in ("unrelated", "near_miss"):
            assert "Run the tests locally" not in example.completion
        if example.generator == "trigger" and example.kind == "apply":
            assert "code-review" in example.completion and "Run the tests locally" not in example.prompt


def test_phrasing_varies_within_each_generator() -> None:
    examples = [e for e in (lambda d: d.train + d.held_out)(build_dataset(make_skill(), seed=1))]
    for generator in ("trigger", "procedure"):
        prompts = [e.prompt for e in examples if e.generator == generator and e.kind == "apply"]
        openings = {" ".join(p.split()[:2]) for p in prompts}
        assert len(openings) >= 3, prompts


def test_deterministic_under_a_seed_and_different_across_seeds() -> None:
    first, second = build_dataset(make_skill(), seed=3), build_dataset(make_skill(), seed=3)
    assert first.train == second.train and first.held_out == second.held_out
    other = build_dataset(make_skill(), seed=4)
    assert [e.prompt for e in other.train] != [e.prompt for e in first.train]


def test_duplicates_empties_and_over_length_are_dropped_and_counted() -> None:
    skill = make_skill()
    long_text = "word " * (MAX_COMPLETION_CHARS // 4)
    skill.examples = [
        ExplicitExample("same question", "same answer", "Overview > Example", 1),
        ExplicitExample("Same   question", "same ANSWER", "Overview > Example", 2),
        ExplicitExample("   ", "an answer", "Overview > Example", 3),
        ExplicitExample("long one", long_text, "Overview > Example", 4),
    ]
    dataset = build_dataset(skill, seed=1)
    assert dataset.dropped["duplicate"] >= 1
    assert dataset.dropped["empty"] == 1
    assert dataset.dropped["too_long"] == 1
    prompts = [" ".join(e.prompt.lower().split()) for e in dataset.train + dataset.held_out]
    assert len(prompts) == len(set(prompts))


def test_split_holds_out_whole_sections() -> None:
    dataset = build_dataset(make_skill(), seed=11)
    assert dataset.held_out and dataset.train
    assert dataset.held_out_sections
    train_sections = {e.section for e in dataset.train if e.generator != "trigger"}
    for section in dataset.held_out_sections:
        assert section not in train_sections


def test_split_never_leaves_held_out_empty() -> None:
    examples = [Example(f"q{i}", f"a{i}", "procedure", "only") for i in range(3)]
    train, held_out, _ = split_examples(examples, seed=0)
    assert len(held_out) == 1 and len(train) == 2
    assert split_examples(examples[:1], seed=0) == (examples[:1], [], [])


def test_a_skill_with_nothing_to_learn_is_refused() -> None:
    empty = Skill(name="x", description="", body="", sections=[])
    with pytest.raises(DatasetError) as info:
        build_dataset(empty, seed=0, generators=("procedure", "explicit", "reference"))
    assert info.value.code == "dataset_empty"


def test_jsonl_round_trip_in_trl_conversational_format(tmp_path: Path) -> None:
    dataset = build_dataset(make_skill(), seed=2)
    paths = write_jsonl(dataset, tmp_path)
    assert read_jsonl(paths["train"]) == dataset.train
    assert read_jsonl(paths["held_out"]) == dataset.held_out
    record = dataset.train[0].to_record()
    assert record["prompt"][0]["role"] == "user" and record["completion"][0]["role"] == "assistant"


def test_stats_count_tokens_with_the_model_tokenizer() -> None:
    dataset = build_dataset(make_skill(), seed=2)
    stats = dataset_stats(dataset, tokenizer_json=TINY_MODEL_DIR / "tokenizer.json", max_seq_length=64)
    assert stats["train_examples"] == len(dataset.train) and stats["held_out_examples"] == len(dataset.held_out)
    assert stats["tokens"]["exact"] is True
    assert stats["tokens"]["all"]["min"] > 0 and stats["tokens"]["all"]["max"] >= stats["tokens"]["all"]["p50"]
    assert 0 < stats["over_max_seq_length"] < len(dataset.train) + len(dataset.held_out)
    assert sum(stats["by_generator"]["train"].values()) == len(dataset.train)
    roomy = dataset_stats(dataset, tokenizer_json=TINY_MODEL_DIR / "tokenizer.json", max_seq_length=100_000)
    assert roomy["over_max_seq_length"] == 0
    estimated = dataset_stats(dataset, tokenizer_json=None, max_seq_length=64)
    assert estimated["tokens"]["exact"] is False
