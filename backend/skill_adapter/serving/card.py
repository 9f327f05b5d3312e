"""The model card (``README.md``) beside an adapter: what it was trained on, how, how it scored, how to load it.

Written into ``final/`` when training succeeds and rewritten when an evaluation of the job succeeds
(torch-free: the pipeline and the evaluation job call it).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SETTINGS_SHOWN = (
    "adapter_type", "num_epochs", "learning_rate", "batch_size", "gradient_accumulation_steps", "max_seq_length",
    "lora_r", "lora_alpha", "lora_dropout", "target_modules", "quant_bits", "packing", "seed",
)  # fmt: skip


def model_card(
    *,
    job_id: str,
    skill_name: str,
    skill_path: Path,
    config: dict[str, Any],
    adapter_path: Path,
    report: dict[str, Any] | None = None,
) -> str:
    """The card's Markdown."""
    try:
        data = skill_path.read_bytes()
    except OSError:
        data = b""
    description = ""
    try:
        from skill_adapter.skills.parser import parse_skill

        description = parse_skill(data.decode("utf-8-sig", errors="replace")).description
    except Exception:  # a card is still written for a skill that no longer parses
        description = ""
    base = _recorded_base(adapter_path) or str(config.get("model", ""))
    recipe = str(config.get("recipe") or "sft")
    lines = [
        "---",
        "library_name: peft",
        f"base_model: {base}",
        "tags: [lora, skill-adapter, agent-skill]",
        "---",
        "",
        f"# {skill_name or job_id}: a LoRA adapter trained from a SKILL.md",
        "",
        f"- **Skill**: {skill_name}" + (f" — {description}" if description else ""),
        f"- **SKILL.md sha256**: `{hashlib.sha256(data).hexdigest() if data else 'unavailable'}`",
        f"- **Base model**: `{base}`" + (f" ({config['base_model']})" if config.get("base_model") else ""),
        f"- **Recipe**: {recipe}",
        f"- **Job**: `{job_id}` (Agent Skill Adapter)",
        "",
        "## Training settings",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {name} | {config[name]} |" for name in SETTINGS_SHOWN if name in config),
        "",
        "## Evaluation",
        "",
        *_evaluation(report),
        "",
        "## How to load it",
        "",
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'base = "{base}"',
        "tokenizer = AutoTokenizer.from_pretrained(base)",
        f'model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), "{adapter_path}")',
        "```",
        "",
        "No SKILL.md in the prompt: the adapter carries the skill. Served by the project's OpenAI-compatible",
        f'`/v1/chat/completions` as `"model": "{job_id}"` (or `"{skill_name}"`); a standalone merged model:',
        f"`skill-adapter export {job_id} --merged OUT`; on vLLM: `skill-adapter export-vllm {job_id}`.",
        "",
    ]
    return "\n".join(lines)


def _evaluation(report: dict[str, Any] | None) -> list[str]:
    if not report:
        return ["Not evaluated yet: `POST /api/training/<job_id>/evaluate` (or `skill-adapter evaluate`)."]
    arms = report.get("arms", {})
    rows = [
        f"{report.get('num_examples', '?')} case(s) from {report.get('source', '?')}, greedy decoding.",
        "",
        "| arm | perplexity | accuracy | BLEU | chrF | prompt tokens/call |",
        "|---|---|---|---|---|---|",
    ]
    for arm in ("base", "base_with_skill", "adapter"):
        values = arms.get(arm) or {}
        cells = [_fmt(values.get(k)) for k in ("perplexity", "accuracy", "bleu", "chrf", "prompt_tokens_per_call")]
        rows.append(f"| {arm} | " + " | ".join(cells) + " |")
    saved = report.get("prompt_tokens_saved_per_call")
    if saved is not None:
        rows += ["", f"Prompt tokens saved per call against base + SKILL.md: {_fmt(saved)}."]
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _recorded_base(adapter_path: Path) -> str | None:
    try:
        config = json.loads((adapter_path / "adapter_config.json").read_text(encoding="utf-8"))
        return str(config["base_model_name_or_path"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_model_card(adapter_path: Path, **kwargs: Any) -> Path | None:
    """Write ``README.md`` into ``adapter_path``; a failure is logged, never raised (the adapter is what counts)."""
    try:
        card = adapter_path / "README.md"
        tmp = card.with_name("README.md.tmp")
        tmp.write_text(model_card(adapter_path=adapter_path, **kwargs), encoding="utf-8")
        tmp.replace(card)
        return card
    except Exception as exc:
        log.warning("could not write the model card in %s: %s", adapter_path, exc)
        return None
