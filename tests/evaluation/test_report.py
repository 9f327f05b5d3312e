"""The Markdown report and its plain-words notes, on hand-made reports (no model needed)."""

from __future__ import annotations

import copy
from typing import Any

from skill_adapter.assets import TINY_MODEL_DIR
from skill_adapter.evaluation.report import ARM_TITLES, is_tiny_model, report_notes, to_markdown

ARMS = tuple(ARM_TITLES)


def report(outputs: dict[str, list[str]], *, model: str = "Qwen/Qwen3-8B", scored: int = 2) -> dict[str, Any]:
    def arm(ppl: float, bleu: float) -> dict[str, Any]:
        return {"perplexity": ppl, "accuracy": 0.5, "bleu": bleu, "chrf": bleu, "prompt_tokens_per_call": 30.0,
                "scored_cases": scored}  # fmt: skip

    return {
        "evaluation_id": "eval-1",
        "job_id": "train-1",
        "skill_name": "commit-messages",
        "model": model,
        "adapter_path": "checkpoints/train-1/final",
        "source": "held_out",
        "num_examples": 2,
        "seed": 42,
        "generation": {"do_sample": False, "num_beams": 1, "max_new_tokens": 16},
        "skill": {"tokens": 100, "tokens_used": 100, "truncated": False},
        "context_tokens": 2048,
        "arms": {"base": arm(40.0, 5.0), "base_with_skill": arm(20.0, 30.0), "adapter": arm(25.0, 25.0)},
        "internalisation": {
            "perplexity": {"ratio": 0.75, "reason": None},
            "accuracy": {"ratio": None, "reason": "the SKILL.md in the prompt changes nothing here"},
        },
        "prompt_tokens_saved_per_call": 100.0,
        "examples": [
            {
                "id": f"held-out-{i}",
                "prompt": f"prompt {i}",
                "reference": f"reference {i}",
                "outputs": {a: {"output": outputs[a][i], "perplexity": 2.0} for a in ARMS},
            }
            for i in range(2)
        ],
        "best": ["held-out-0"],
        "worst": ["held-out-1"],
    }


def test_a_report_whose_figures_stand_has_no_notes_and_names_arms_in_words() -> None:
    text = report({a: ["fix: x", "feat: y"] for a in ARMS})
    assert report_notes(text) == []
    markdown = to_markdown(text)
    assert "Read this first" not in markdown
    assert "| metric | base | base + SKILL.md | adapter | internalisation |" in markdown
    assert "| 0.75 |" in markdown
    assert "base_with_skill" not in markdown  # identifiers never reach the reader
    # A ratio left out says so in the table and gives its reason below it.
    assert "| means nothing (below) |" in markdown
    assert "- accuracy: the SKILL.md in the prompt changes nothing here" in markdown


def test_every_arm_silent_on_the_tiny_model_is_said_plainly() -> None:
    silent = report({a: ["", "  "] for a in ARMS}, model=str(TINY_MODEL_DIR))
    notes = report_notes(silent)
    assert len(notes) == 2
    assert "embedded tiny test model" in notes[0] and "not what the skill does" in notes[0]
    assert "Every arm produced empty output on all 2 cases" in notes[1] and "compare nothing" in notes[1]
    markdown = to_markdown(silent)
    assert markdown.index("**Read this first:**") < markdown.index("| metric |")
    assert "- base + SKILL.md: (empty output)" in markdown
    assert "| held-out-0 | 2.00 | 2.00 | 2.00 | (empty output) |" in markdown


def test_one_silent_arm_and_no_exact_case_get_their_own_notes() -> None:
    outputs = {"base": ["a", "b"], "base_with_skill": ["c", "d"], "adapter": ["", ""]}
    notes = report_notes(report(outputs, scored=0))
    assert notes == [
        "Adapter produced empty output on all 2 cases: its accuracy, BLEU and chrF are 0 by construction.",
        "No case has an exact expected answer, so accuracy, BLEU and chrF are not computed; each arm's output is "
        "shown for you to judge.",
    ]


def test_stored_notes_are_used_as_they_are() -> None:
    stored = copy.deepcopy(report({a: ["x", "y"] for a in ARMS}))
    stored["notes"] = ["A note written when the evaluation ran."]
    assert "- A note written when the evaluation ran." in to_markdown(stored)


def test_tiny_model_by_name_or_folder() -> None:
    assert is_tiny_model("tiny") and is_tiny_model(str(TINY_MODEL_DIR)) and is_tiny_model(f"{TINY_MODEL_DIR}/")
    assert not is_tiny_model("Qwen/Qwen3-8B") and not is_tiny_model("")
