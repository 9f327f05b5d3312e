"""The evaluation report as Markdown (saved beside the adapter and printed by ``skill-adapter evaluate``).

Also the report's plain-words parts that the JSON carries for every reader: ``arm_titles`` (what each arm
is called) and ``notes`` (which figures mean nothing on this run, and why).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ARM_TITLES = {"base": "base", "base_with_skill": "base + SKILL.md", "adapter": "adapter"}
TEXT_METRICS = "accuracy, BLEU and chrF"
METRICS = (
    ("perplexity", "perplexity (lower is better)", "{:.3f}"),
    ("accuracy", "accuracy (exact match)", "{:.1%}"),
    ("bleu", "BLEU", "{:.2f}"),
    ("chrf", "chrF", "{:.2f}"),
    ("kl_to_prompted", "KL from base + SKILL.md per token (lower is better)", "{:.4f}"),
    ("expectation_pass_rate", "expectations met", "{:.1%}"),
    ("prompt_tokens_per_call", "prompt tokens per call", "{:.1f}"),
)


def _fmt(value: Any, pattern: str) -> str:
    if value is None:
        return "n/a"
    return pattern.format(value)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(text: str) -> str:
    return _short(text).replace("|", "\\|")


def is_tiny_model(model: str) -> bool:
    """Whether ``model`` is the embedded tiny test model (by its built-in name or its folder)."""
    from skill_adapter.assets import TINY_MODEL_DIR

    if model == "tiny":
        return True
    try:
        return Path(model).resolve() == TINY_MODEL_DIR.resolve()
    except OSError:
        return False


def report_notes(report: dict[str, Any]) -> list[str]:
    """Plain sentences on what in this report means nothing, and why (empty when every figure stands)."""
    notes: list[str] = []
    if is_tiny_model(str(report.get("model", ""))):
        notes.append(
            "The base model is the embedded tiny test model: it is random-initialised and writes no real text, "
            "so this report shows that the pipeline runs, not what the skill does."
        )
    examples = report.get("examples", [])
    count = len(examples)
    empty = [arm for arm in ARM_TITLES if examples and all(not e["outputs"][arm]["output"].strip() for e in examples)]
    if count and len(empty) == len(ARM_TITLES):
        notes.append(
            f"Every arm produced empty output on all {count} cases, so {TEXT_METRICS} compare nothing: they are "
            "0 for every arm and their ratios are left out. Perplexity, which scores the reference answers, "
            "still applies."
        )
    else:
        for arm in empty:
            notes.append(
                f"{ARM_TITLES[arm].capitalize()} produced empty output on all {count} cases: its {TEXT_METRICS} "
                "are 0 by construction."
            )
    scored = [report["arms"][arm].get("scored_cases") for arm in ARM_TITLES if arm in report.get("arms", {})]
    if count and scored and all(n == 0 for n in scored):
        notes.append(
            f"No case has an exact expected answer, so {TEXT_METRICS} are not computed; each arm's output is "
            "shown for you to judge."
        )
    return notes


def to_markdown(report: dict[str, Any]) -> str:
    arms = report["arms"]
    lines = [
        f"# Evaluation {report['evaluation_id']} of {report['job_id']}",
        "",
        f"- skill: {report.get('skill_name') or '-'}; base model: `{report['model']}`",
        f"- adapter: `{report['adapter_path']}`",
        f"- cases: {report['num_examples']} from {report['source']}"
        + (f" (first {report['limit']})" if report.get("limit") else ""),
        f"- generation: greedy (do_sample={report['generation']['do_sample']}), "
        f"max_new_tokens={report['generation']['max_new_tokens']}; seed {report['seed']}",
    ]
    skill = report["skill"]
    if skill["truncated"]:
        lines.append(
            f"- **the SKILL.md was truncated** for base + SKILL.md: {skill['tokens_used']} of {skill['tokens']} "
            f"tokens fit the model's context of {report['context_tokens']} beside the prompts"
        )
    notes = report["notes"] if "notes" in report else report_notes(report)
    if notes:
        lines += ["", "**Read this first:**", ""] + [f"- {note}" for note in notes]
    lines += ["", "| metric | " + " | ".join(ARM_TITLES.values()) + " | internalisation |", "|---|---|---|---|---|"]
    left_out: list[str] = []
    for key, title, pattern in METRICS:
        row = [_fmt(arms[arm].get(key), pattern) for arm in ARM_TITLES]
        ratio = report["internalisation"].get(key)
        if ratio is None:
            share = ""
        elif ratio["ratio"] is None:
            share = "means nothing (below)"
            left_out.append(f"- {title.split(' (')[0]}: {ratio['reason']}")
        else:
            share = f"{ratio['ratio']:.2f}"
        lines.append(f"| {title} | " + " | ".join(row) + f" | {share} |")
    lines += [
        "",
        "Internalisation is (adapter - base) / (base + SKILL.md - base): 1.0 means the adapter does what the "
        "skill text in the prompt does, 0 means it does no better than the base model. For the KL row it is "
        "1 - KL(adapter) / KL(base): the share of the base model's distance to the prompted model that the "
        "adapter removes, on the reference tokens.",
    ]
    if left_out:
        lines += ["", "Ratios that mean nothing on this run, and why:", "", *left_out, ""]
    lines.append(f"The adapter saves {report['prompt_tokens_saved_per_call']:.1f} prompt tokens per call.")
    by_id = {example["id"]: example for example in report["examples"]}
    for title, ids in (("Best cases", report["best"]), ("Worst cases", report["worst"])):
        lines += ["", f"## {title}", ""]
        for example_id in ids:
            example = by_id[example_id]
            lines.append(f"### {example_id}" + (f" ({example['section']})" if example.get("section") else ""))
            lines.append("")
            lines.append(f"- prompt: {_short(example['prompt'])}")
            lines.append(f"- reference: {_short(example['reference'])}")
            for arm, title_arm in ARM_TITLES.items():
                out = example["outputs"][arm]
                lines.append(f"- {title_arm}: {_short(out['output']) or '(empty output)'}")
            lines.append("")
    header = " | ".join(f"{title} ppl" for title in ARM_TITLES.values())
    lines += ["## All cases", "", f"| id | {header} | adapter output |"]
    lines.append("|---|---|---|---|---|")
    for example in report["examples"]:
        ppl = [_fmt(example["outputs"][arm]["perplexity"], "{:.2f}") for arm in ARM_TITLES]
        output = _cell(example["outputs"]["adapter"]["output"]) or "(empty output)"
        lines.append(f"| {example['id']} | " + " | ".join(ppl) + f" | {output} |")
    return "\n".join(lines) + "\n"
