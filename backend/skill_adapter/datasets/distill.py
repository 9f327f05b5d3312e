"""The ``distill`` recipe's data: the prompts a user of the skill would send, and the teacher's answers.

Torch-free: this module gathers and splits prompts, filters what the teacher wrote, and saves, caches and
reads the result. The model work (the teacher writing prompts and answering them) lives in
``skill_adapter.training.teacher``.

Prompt sources, each recorded per example as ``source``:

- ``trigger``: the importer's task prompts, drawn from the description's "use when" clauses.
- ``skill_example``: the inputs of the skill's own examples (Input:/Output: blocks, Example sections).
- ``evals``: the prompts of ``evals/evals.json``. They only ever go to the held-out split, so an
  evaluation on them measures prompts the adapter never trained on.
- ``model``: requests the base model writes itself, with the skill in its context (see the teacher).
- ``off_skill``: everyday requests where the skill does not apply; the teacher answers them too, so
  "when not to apply it" is learnt from the prompted model.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from skill_adapter.core.errors import DatasetError
from skill_adapter.datasets.builder import UNRELATED, Example, _rng, trigger_examples
from skill_adapter.skills.model import Skill

CACHE_VERSION = 1
HELD_OUT_FRACTION = 0.2
MIN_PROMPT_CHARS = 12
MAX_PROMPT_CHARS = 600
MIN_TRAIN_EXAMPLES = 4
COPY_SHINGLE_WORDS = 8  # a prompt sharing this many consecutive words with the skill copies its text

# Everyday requests beside the builder's fixed questions: open-ended ones, where the prompted model's
# ordinary style (not a one-line fact) is what the adapter must keep.
OFF_SKILL_EXTRA = [
    "Write a short poem about autumn leaves.",
    "Give me three tips for sleeping better.",
    "Explain what photosynthesis is in two sentences.",
    "Suggest a name for a grey cat.",
    "How do I boil an egg?",
    "Summarise the plot of Little Red Riding Hood in one paragraph.",
    "What are some good stretches after a long run?",
    "Recommend a board game for four players.",
]

PROMPT_WRITER_INSTRUCTION = (
    "Write one realistic request that a user might send to an assistant that follows the instructions above. "
    "Make it concrete, with the details the task needs. Reply with the request only, in the user's words."
)


@dataclass(frozen=True)
class DistillParams:
    """The recipe's settings that change what the teacher sees or writes (they key the cache)."""

    loss: str = "kl"
    num_prompts: int = 32
    teacher_max_new_tokens: int = 128
    top_k: int = 64
    temperature: float = 0.0
    seed: int = 42

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DistillParams:
        return cls(
            loss=str(config.get("distill_loss", "kl")),
            num_prompts=int(config.get("distill_prompts", 32)),
            teacher_max_new_tokens=int(config.get("teacher_max_new_tokens", 128)),
            top_k=int(config.get("distill_top_k", 64)),
            temperature=float(config.get("teacher_temperature", 0.0)),
            seed=int(config["seed"]),
        )


@dataclass(frozen=True)
class Prompt:
    text: str
    source: str
    kind: str = "task"  # task (the skill applies) or off_skill
    section: str = "description"


@dataclass
class DistillDataset:
    """Teacher-answered examples with their provenance, split; what ``dataset/`` of a distill job holds."""

    train: list[Example]
    held_out: list[Example]
    teacher: dict[str, Any]
    dropped: dict[str, int] = field(default_factory=dict)
    sources: dict[str, dict[str, int]] = field(default_factory=dict)
    seed: int = 0
    cache_key: str = ""
    held_out_sections: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        """Examples per source and per split."""
        return {
            split: dict(Counter(e.generator for e in examples))
            for split, examples in (("train", self.train), ("held_out", self.held_out))
        }

    def summary(self) -> dict[str, Any]:
        return {
            "recipe": "distill",
            "teacher": self.teacher,
            "dropped": self.dropped,
            "sources": self.sources,
            "train": len(self.train),
            "held_out": len(self.held_out),
            "seed": self.seed,
            "cache_key": self.cache_key,
        }


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def copies_skill(text: str, skill_text: str, n: int = COPY_SHINGLE_WORDS) -> bool:
    """Whether ``text`` repeats ``n`` consecutive words of the skill (a recital, not a request)."""
    words = _words(text)
    if len(words) < n:
        return False
    skill_words = _words(skill_text)
    shingles = {tuple(skill_words[i : i + n]) for i in range(len(skill_words) - n + 1)}
    return any(tuple(words[i : i + n]) in shingles for i in range(len(words) - n + 1))


def _evals_prompts(skill_file: Path | None) -> list[str]:
    if skill_file is None:
        return []
    path = skill_file.parent / "evals" / "evals.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    items = data.get("evals") if isinstance(data, dict) else None
    return [item["prompt"] for item in items or [] if isinstance(item, dict) and isinstance(item.get("prompt"), str)]


def seed_prompts(skill: Skill, *, seed: int, skill_file: Path | None = None) -> list[Prompt]:
    """Every prompt known before the model writes any: importer, skill examples, evals, off-skill."""
    prompts = [
        Prompt(example.prompt, "trigger")
        for example in trigger_examples(skill, _rng(seed, "trigger", skill.name))
        if example.kind == "apply"
    ]
    prompts += [Prompt(example.input, "skill_example", section=example.section) for example in skill.examples]
    prompts += [Prompt(text, "evals") for text in _evals_prompts(skill_file)]
    off = [question for question, _ in UNRELATED] + OFF_SKILL_EXTRA
    rng = _rng(seed, "off_skill", skill.name)
    prompts += [Prompt(text, "off_skill", kind="off_skill") for text in rng.sample(off, k=min(8, len(off)))]
    return prompts


def clean_written_prompt(text: str) -> str:
    """A model-written request without the wrappers models put around one (quotes, "Request:")."""
    text = text.strip()
    text = re.sub(r"^(?:\*\*)?(?:user(?: request)?|request|prompt)\s*:\s*(?:\*\*)?", "", text, flags=re.IGNORECASE)
    text = text.strip().strip('"').strip("\u201c\u201d").strip()
    return text


def filter_prompts(prompts: list[Prompt], *, skill_text: str, dropped: Counter[str]) -> list[Prompt]:
    """Deduplicate, drop too short or too long prompts and those that copy the skill's own text."""
    kept: list[Prompt] = []
    seen: set[str] = set()
    for prompt in prompts:
        text = prompt.text.strip()
        key = normalise(text)
        if len(text) < MIN_PROMPT_CHARS or len(text) > MAX_PROMPT_CHARS:
            dropped[f"prompt_length_{prompt.source}"] += 1
            continue
        if key in seen:
            dropped[f"prompt_duplicate_{prompt.source}"] += 1
            continue
        if prompt.source == "model" and copies_skill(text, skill_text):
            dropped["prompt_copies_skill"] += 1
            continue
        seen.add(key)
        kept.append(Prompt(text, prompt.source, prompt.kind, prompt.section))
    return kept


def split_prompts(prompts: list[Prompt], *, seed: int) -> tuple[list[Prompt], list[Prompt]]:
    """(train, held_out): evals prompts always held out, and a seeded fifth of the other task prompts
    (at least one). Prompts are already unique, so no held-out prompt reaches training."""
    held = [p for p in prompts if p.source == "evals"]
    rest = [p for p in prompts if p.source != "evals"]
    tasks = [p for p in rest if p.kind == "task"]
    order = sorted(tasks, key=lambda p: hashlib.sha256(f"{seed}\x00{p.text}".encode()).hexdigest())
    count = max(1, round(len(tasks) * HELD_OUT_FRACTION)) if len(tasks) >= 2 else 0
    chosen = {id(p) for p in order[:count]}
    held += [p for p in tasks if id(p) in chosen]
    train = [p for p in rest if id(p) not in chosen]
    return train, held


def degenerate_reason(answer: str) -> str | None:
    """Why a teacher answer is unusable (empty, a few characters, a loop), or None."""
    text = answer.strip()
    if not text:
        return "empty_answer"
    words = _words(text)
    if len(text) < 8 or not words:
        return "too_short_answer"
    if len(words) >= 16:
        trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
        if len(set(trigrams)) / len(trigrams) < 0.3:
            return "repetitive_answer"
    return None


def answered_examples(
    prompts: list[Prompt], answers: list[str], *, dropped: Counter[str]
) -> tuple[list[Example], Counter[str]]:
    """Examples for the prompts whose answers are usable, and the count kept per source."""
    kept: list[Example] = []
    sources: Counter[str] = Counter()
    for prompt, answer in zip(prompts, answers, strict=True):
        reason = degenerate_reason(answer)
        if reason is not None:
            dropped[reason] += 1
            continue
        kept.append(Example(prompt.text, answer.strip(), prompt.source, prompt.section, prompt.kind))
        sources[prompt.source] += 1
    return kept, sources


def check_enough(train: list[Example], *, dropped: dict[str, int], total: int) -> None:
    """Refuse to train on too few usable teacher answers, saying what went wrong."""
    if len(train) >= MIN_TRAIN_EXAMPLES:
        return
    reasons = ", ".join(f"{name} {count}" for name, count in sorted(dropped.items()) if count) or "none"
    raise DatasetError(
        f"the teacher gave only {len(train)} usable training answer(s) of {total} prompts "
        f"(at least {MIN_TRAIN_EXAMPLES} are needed; dropped: {reasons}). The base model may be too small "
        "to follow the skill; try a larger base model, more distill_prompts, or recipe 'template'",
        code="distill_too_few_examples",
    )


def cache_key(*, model: str, skill_file: Path, params: DistillParams, max_seq_length: int) -> str:
    """A digest of everything the generated dataset depends on: same key, same dataset."""
    digest = hashlib.sha256()
    folder = skill_file.parent
    for path in sorted([skill_file, folder / "evals" / "evals.json"]):
        if path.is_file():
            digest.update(path.name.encode() + b"\x00" + path.read_bytes() + b"\x00")
    payload = {
        "version": CACHE_VERSION,
        "model": model,
        "params": {**asdict(params), "loss": None, "top_k": None},  # training settings, not the data
        "max_seq_length": max_seq_length,
    }
    digest.update(json.dumps(payload, sort_keys=True).encode())
    return digest.hexdigest()[:24]


def record(example: Example, teacher: dict[str, Any]) -> dict[str, Any]:
    """A saved example: TRL's prompt/completion record plus its provenance."""
    return {**example.to_record(), "source": example.generator, "teacher": teacher}


def write_dataset(dataset: DistillDataset, folder: Path) -> None:
    """``train.jsonl``, ``held_out.jsonl`` and ``distill.json`` (teacher settings, counts) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, examples in (("train", dataset.train), ("held_out", dataset.held_out)):
        tmp = folder / f"{split}.jsonl.tmp"
        with tmp.open("w", encoding="utf-8") as handle:
            for example in examples:
                handle.write(json.dumps(record(example, dataset.teacher), ensure_ascii=False) + "\n")
        tmp.replace(folder / f"{split}.jsonl")
    tmp = folder / "distill.json.tmp"
    tmp.write_text(json.dumps(dataset.summary(), indent=2), encoding="utf-8")
    tmp.replace(folder / "distill.json")


def read_dataset(folder: Path) -> DistillDataset | None:
    """A dataset written by :func:`write_dataset`, or None when ``folder`` holds no complete one."""
    from skill_adapter.datasets.builder import read_jsonl

    summary_path = folder / "distill.json"
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        train = read_jsonl(folder / "train.jsonl")
        held_out = read_jsonl(folder / "held_out.jsonl")
    except (OSError, ValueError, KeyError):
        return None
    return DistillDataset(
        train=train,
        held_out=held_out,
        teacher=summary.get("teacher", {}),
        dropped=summary.get("dropped", {}),
        sources=summary.get("sources", {}),
        seed=int(summary.get("seed", 0)),
        cache_key=str(summary.get("cache_key", "")),
    )


def read_records(folder: Path, *, limit: int = 500) -> dict[str, Any]:
    """What a job trained on, for the API and the dashboard: records with provenance, and the summary."""
    result: dict[str, Any] = {"summary": None, "examples": [], "count": 0}
    summary_path = folder / "distill.json"
    if summary_path.is_file():
        result["summary"] = json.loads(summary_path.read_text(encoding="utf-8"))
    rows = []
    for split in ("train", "held_out"):
        path = folder / f"{split}.jsonl"
        if not path.is_file():
            continue
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                data = json.loads(line)
                rows.append(
                    {
                        "split": split,
                        "prompt": data["prompt"][0]["content"],
                        "completion": data["completion"][0]["content"],
                        "source": data.get("source", data.get("generator")),
                        "kind": data.get("kind"),
                        "section": data.get("section"),
                    }
                )
    result["count"] = len(rows)
    result["examples"] = rows[:limit]
    return result
