"""The evaluation report as Markdown (saved beside the adapter and printed by ``skill-adapter evaluate``)."""

from __future__ import annotations

from typing import Any

ARM_TITLES = {"base": "base", "base_with_skill": "base + SKILL.md", "adapter": "adapter"}
METRICS = (
    ("perplexity", "perplexity (lower is better)", "{:.3f}"),
    ("accuracy", "accuracy (exact match)", "{:.1%}"),
    ("bleu", "BLEU", "{:.2f}"),
    ("chrf", "chrF", "{:.2f}"),
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
    lines += ["", "| metric | " + " | ".join(ARM_TITLES.values()) + " | internalisation |", "|---|---|---|---|---|"]
    for key, title, pattern in METRICS:
        row = [_fmt(arms[arm].get(key), pattern) for arm in ARM_TITLES]
        ratio = report["internalisation"].get(key)
        if ratio is None:
            share = ""
        elif ratio["ratio"] is None:
            share = f"n/a: {ratio['reason']}"
        else:
            share = f"{ratio['ratio']:.2f}"
        lines.append(f"| {title} | " + " | ".join(row) + f" | {share} |")
    lines += [
        "",
        "Internalisation is (adapter - base) / (base + SKILL.md - base): 1.0 means the adapter does what the "
        "skill text in the prompt does.",
        f"The adapter saves {report['prompt_tokens_saved_per_call']:.1f} prompt tokens per call.",
    ]
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
                lines.append(f"- {title_arm}: {_short(out['output']) or '(empty)'}")
            lines.append("")
    header = " | ".join(f"{title} ppl" for title in ARM_TITLES.values())
    lines += ["## All cases", "", f"| id | {header} | adapter output |"]
    lines.append("|---|---|---|---|---|")
    for example in report["examples"]:
        ppl = [_fmt(example["outputs"][arm]["perplexity"], "{:.2f}") for arm in ARM_TITLES]
        output = _cell(example["outputs"]["adapter"]["output"])
        lines.append(f"| {example['id']} | " + " | ".join(ppl) + f" | {output} |")
    return "\n".join(lines) + "\n"
