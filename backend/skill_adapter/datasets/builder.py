"""Turn one parsed Skill into prompt/completion examples and a deterministic train/held-out split.

Four generators, each tagging its examples with its name and the section they came from:

- ``trigger``: prompts where the skill applies (drawn from the description's "use when" clauses) answered
  the way the skill says; near-miss prompts that ask *about* the skill's subject without asking for its
  task, answered briefly; and unrelated prompts with their ordinary answers, so the adapter learns when
  not to apply the skill.
- ``procedure``: each section (its steps, its rules, its prose) becomes the questions a user would ask,
  answered with what the section prescribes.
- ``explicit``: input/output pairs, Example sections and code samples from the body.
- ``reference``: the text of files under ``references/`` and ``scripts/`` the skill ships with.

Every generator picks among several phrasings with a seeded RNG, so the output varies across prompts but
is identical for the same skill and seed.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skill_adapter.core.budget import check_budget
from skill_adapter.core.errors import DatasetError
from skill_adapter.skills.model import Section, Skill

GENERATORS = ("trigger", "procedure", "explicit", "reference")
MAX_PROMPT_CHARS = 4_000
MAX_COMPLETION_CHARS = 12_000
REFERENCE_CHUNK_CHARS = 1_500
HELD_OUT_FRACTION = 0.15


@dataclass(frozen=True)
class Example:
    prompt: str
    completion: str
    generator: str
    section: str
    kind: str = "apply"

    def to_record(self) -> dict[str, Any]:
        """TRL's conversational prompt/completion format, plus our tags."""
        return {
            "prompt": [{"role": "user", "content": self.prompt}],
            "completion": [{"role": "assistant", "content": self.completion}],
            "generator": self.generator,
            "section": self.section,
            "kind": self.kind,
        }


@dataclass
class BuiltDataset:
    train: list[Example]
    held_out: list[Example]
    dropped: dict[str, int] = field(default_factory=dict)
    seed: int = 0
    held_out_sections: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        """Examples per generator and per split."""
        result: dict[str, dict[str, int]] = {}
        for split, examples in (("train", self.train), ("held_out", self.held_out)):
            counter = Counter(e.generator for e in examples)
            result[split] = {name: counter.get(name, 0) for name in GENERATORS}
        return result


# --------------------------------------------------------------------------------------------- helpers

_WS = re.compile(r"[ \t]+")


def _clean(text: str) -> str:
    lines = [_WS.sub(" ", line).rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# Every pattern below reads user text, so each is linear: a match attempt may only scan a run of
# characters that no other attempt scans. The link pattern used to be ``\[([^\]]+)\]\([^)]*\)``, whose
# label could run across every later ``[``: 40,000 of them took 20 s (quadratic).
_CODE_SPAN = re.compile(r"`([^`]*)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*|__([^_]+)__")
_LINK = re.compile(r"\[([^\[\]]+)\]\([^()]*\)")


def _strip_markdown(text: str) -> str:
    text = _CODE_SPAN.sub(r"\1", text)
    text = _BOLD.sub(lambda m: m.group(1) or m.group(2), text)
    text = _LINK.sub(r"\1", text)
    return text.strip()


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]


def _title_phrase(section: Section) -> str:
    title = _topic(_strip_markdown(section.title))
    title = re.sub(r"^(step|phase|part)\s*\d+\s*[:.\-\u2013\u2014]\s*", "", title, flags=re.IGNORECASE)
    title = re.sub(r"^\d+[.)]\s*", "", title)
    return title.strip(" :#") or section.title


_CUE = re.compile(
    r"\b(?:use (?:this(?: skill)?|it )?\s*(?:when(?:ever)?|for|if|before|while|to)|triggers? (?:when|on)"
    r"|when (?:the )?user|applies when|for when)\b[:\s]*([^.]+)",
    re.IGNORECASE,
)
# ``(?<!\s)``: a separator starts at the first blank of a run, so a long blank run is scanned once, not
# once per blank (``\s+(?:or|and)\s+`` alone is quadratic on a run of spaces).
_CLAUSE_SPLIT = re.compile(r",\s*(?:or|and)?\s*|(?<!\s)\s+(?:or|and)\s+|;\s*|(?<!\s)\s+[-\u2013\u2014]\s+|:\s+")
_THIRD_PERSON = re.compile(r"^([A-Z][a-z]+?)(ies|es|s)\b")


def _third_person_to_request(sentence: str) -> str | None:
    """ "Writes clear commit messages." -> "write clear commit messages"; None when it is not a verb phrase."""
    match = _THIRD_PERSON.match(sentence)
    if not match:
        return None
    stem, ending = match.group(1), match.group(2)
    if ending == "ies":
        verb = stem + "y"
    elif ending == "es" and stem.endswith(("ch", "sh", "ss", "x", "z")):
        verb = stem
    elif ending == "es":
        verb = stem + "e"
    else:
        verb = stem
    return (verb.lower() + sentence[match.end() :]).rstrip(" .")


_ASKS = re.compile(
    r"^(?:(?:the )?user |they |you )?(?:asks?|wants?|needs?|requests?|is asked)\s+"
    r"(?:(how )?to |(for |about |help with ))?",
    re.IGNORECASE,
)


def _classify(kind: str, phrase: str) -> tuple[str, str]:
    """ "asks for a commit message" is a subject, "wants to summarise a diff" a request."""
    match = _ASKS.match(phrase)
    if not match or kind != "situation":
        return kind, phrase
    rest = phrase[match.end() :]
    if match.group(2):
        return "subject", rest
    if match.group(1) is not None or match.group(0).rstrip().endswith(" to"):
        return "request", rest
    return kind, phrase


def _use_when_clauses(description: str) -> list[tuple[str, str]]:
    """(kind, phrase) task phrases from a description.

    "Use when X, Y, or Z" gives situations X, Y and Z; "Use for/before X" gives subjects; a description
    that starts with a verb ("Writes commit messages") gives a request ("write commit messages").
    """
    text = _strip_markdown(description)
    clauses: list[tuple[str, str]] = []
    for match in _CUE.finditer(text):
        cue = match.group(0)[: match.start(1) - match.start(0)].lower()
        kind = "situation" if "when" in cue or "if" in cue or "user" in cue else "subject"
        parts = _CLAUSE_SPLIT.split(match.group(1))
        clauses.extend(_classify(kind, p.strip(" .\"'()")) for p in parts)
    first = (_sentences(text) or [""])[0]
    request = _third_person_to_request(first)
    if request:
        clauses.insert(0, ("request", request))
    if not clauses and first:
        clauses = [("subject", _lower_first(first.rstrip(".")))]
    seen: set[str] = set()
    result = []
    for kind, phrase in clauses:
        if 3 <= len(phrase) <= 200 and phrase.lower() not in seen and len(phrase.split()) >= 2:
            seen.add(phrase.lower())
            result.append((kind, phrase))
    return result[:8]


def _topic(title: str) -> str:
    """A heading as a phrase inside a sentence: Title Case words lowered, acronyms and CamelCase kept."""
    words = []
    for word in title.split():
        parts = word.split("-")
        if all(p[:1].isupper() and (p[1:].islower() or not p[1:]) for p in parts if p):
            word = word.lower()
        words.append(word)
    return " ".join(words)


def _summary_of_method(skill: Skill, limit: int = 6) -> list[str]:
    """The first concrete steps or rules of the skill, used to answer trigger prompts."""
    items: list[str] = []
    for section in skill.sections:
        items.extend(section.steps or section.bullets)
        if len(items) >= limit:
            break
    if not items:
        for section in skill.sections:
            items.extend(_sentences(" ".join(section.paragraphs))[:2])
            if len(items) >= limit:
                break
    return [_clean(item) for item in items[:limit] if item.strip()]


# A small fixed pool of everyday requests with correct, skill-free answers (our own words).
UNRELATED = [
    ("What is 15 multiplied by 4?", "15 multiplied by 4 is 60."),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo."),
    ("How many days are there in a leap year?", "A leap year has 366 days."),
    ("Translate 'thank you' into Spanish.", "'Thank you' in Spanish is 'gracias'."),
    ("What is the boiling point of water at sea level in Celsius?", "Water boils at 100 °C at sea level."),
    ("Name the largest planet in the solar system.", "Jupiter is the largest planet in the solar system."),
    ("How many minutes are in three hours?", "Three hours are 180 minutes."),
    ("What is the plural of 'mouse'?", "The plural of 'mouse' is 'mice'."),
    ("Which ocean lies between Africa and Australia?", "The Indian Ocean lies between Africa and Australia."),
    ("What is the square root of 81?", "The square root of 81 is 9."),
    ("Give me a synonym for 'happy'.", "A synonym for 'happy' is 'cheerful'."),
    ("How many sides does a hexagon have?", "A hexagon has six sides."),
    ("What colour do you get by mixing blue and yellow?", "Mixing blue and yellow gives green."),
    ("Convert 2 kilometres to metres.", "2 kilometres are 2,000 metres."),
    ("What is the chemical symbol for gold?", "The chemical symbol for gold is Au."),
    ("In which year did the Second World War end?", "The Second World War ended in 1945."),
]

_APPLY_PROMPTS = {
    "situation": [
        "I need help: {task}.",
        "Can you help me with this: {task}?",
        "{Task}. What should I do?",
        "Here's my situation: {task}. Where do I start?",
        "{Task} \u2014 how would you approach it?",
    ],
    "subject": [
        "I need help with {task}.",
        "Can you help me with {task}?",
        "I'm working on {task}. How should I go about it?",
        "What's the best way to handle {task}?",
        "Please take care of {task} for me.",
    ],
    "request": [
        "Can you {task}?",
        "Please {task}.",
        "I'd like you to {task}.",
        "Could you {task} for me?",
        "Help me {task}.",
    ],
}
_APPLY_OPENERS = [
    "This is a job for the {name} skill, so I'll follow its method.",
    "I'll handle this with the {name} approach.",
    "This calls for {name}. Here is how I'll go about it.",
    "Applying {name} here.",
]
_NEAR_MISS_PROMPTS = [
    "In one sentence, what is the {name} skill for? Don't apply it.",
    "Without doing anything yet, tell me briefly what {name} covers.",
    "I'm just curious: what kind of task is {name} meant for?",
]
_PROCEDURE_STEP_PROMPTS = [
    "What are the steps for {topic}?",
    "Walk me through {topic}.",
    "How do I go about {topic}, step by step?",
    "What's the process for {topic}?",
    "List the steps I should follow for {topic}.",
]
_PROCEDURE_RULE_PROMPTS = [
    "What should I keep in mind about {topic}?",
    "What are the rules for {topic}?",
    "Give me the guidelines on {topic}.",
    "Which points matter most for {topic}?",
    "What's the checklist for {topic}?",
]
_PROCEDURE_PROSE_PROMPTS = [
    "Explain {topic}.",
    "What does the {name} skill say about {topic}?",
    "How does {topic} fit in when the task is: {context}?",
    "How should I think about {topic}?",
    "What's the guidance on {topic}?",
]
_CODE_PROMPTS = [
    "Show me an example for {topic}.",
    "Can you give me a {language} sample for {topic}?",
    "What does {topic} look like in practice?",
    "Write out the {language} snippet for {topic}.",
]
_REFERENCE_PROMPTS = [
    "What does {ref} say about {topic}?",
    "Summarise the part of {ref} on {topic}.",
    "According to the skill's reference {ref}, what about {topic}?",
    "Look up {topic} in {ref}.",
]


def _task_forms(clause: str) -> dict[str, str]:
    task = clause.strip().rstrip(".")
    task = re.sub(
        r"^(?:(?:the )?user )?(?:asks|wants|needs|requests)\s+(?:to |for |about |help with )?",
        "",
        task,
        flags=re.IGNORECASE,
    )
    task = re.sub(r"^(you need to |you want to |asked to |to )", "", task, flags=re.IGNORECASE)
    return {"task": task, "Task": task[:1].upper() + task[1:]}


# ------------------------------------------------------------------------------------------ generators


def trigger_examples(skill: Skill, rng: random.Random) -> Iterable[Example]:
    method = _summary_of_method(skill)
    method_text = "\n".join(f"{i}. {_strip_markdown(item)}" for i, item in enumerate(method, 1))
    clauses = _use_when_clauses(skill.description)
    for kind, clause in clauses:
        forms = _task_forms(clause)
        templates = _APPLY_PROMPTS[kind]
        for template in rng.sample(templates, k=min(3, len(templates))):
            opener = rng.choice(_APPLY_OPENERS).format(name=skill.name)
            completion = opener + ("\n\n" + method_text if method_text else "")
            yield Example(template.format(**forms), completion, "trigger", "description", "apply")
    first_sentence = (_sentences(_strip_markdown(skill.description)) or [skill.description])[0]
    answers = [
        f"{skill.name} is a skill for this: {first_sentence}",
        f"It covers the following. {first_sentence}",
        f"In short: {first_sentence}",
    ]
    for template, answer in zip(_NEAR_MISS_PROMPTS, answers, strict=True):
        yield Example(template.format(name=skill.name), answer, "trigger", "description", "near_miss")
    for prompt, answer in rng.sample(UNRELATED, k=min(len(UNRELATED), max(4, len(clauses) * 2))):
        yield Example(prompt, answer, "trigger", "description", "unrelated")


def procedure_examples(skill: Skill, rng: random.Random) -> Iterable[Example]:
    contexts = [_task_forms(c)["task"] for _, c in _use_when_clauses(skill.description)] or [skill.name]
    for section in skill.sections:
        topic = _title_phrase(section)
        path = section.path
        fmt = {"topic": topic, "name": skill.name}
        if section.steps:
            answer = "\n".join(f"{i}. {_clean(step)}" for i, step in enumerate(section.steps, 1))
            for template in rng.sample(_PROCEDURE_STEP_PROMPTS, k=2):
                yield Example(template.format(**fmt), answer, "procedure", path)
        if section.bullets:
            answer = "\n".join(f"- {_clean(item)}" for item in section.bullets)
            for template in rng.sample(_PROCEDURE_RULE_PROMPTS, k=2):
                yield Example(template.format(**fmt), answer, "procedure", path)
        prose = _clean("\n\n".join(section.paragraphs))
        if len(prose) >= 40:
            for template in rng.sample(_PROCEDURE_PROSE_PROMPTS, k=2):
                prompt = template.format(**fmt, context=rng.choice(contexts))
                yield Example(prompt, prose, "procedure", path)
        if not (section.steps or section.bullets or len(prose) >= 40) and len(_clean(section.text)) >= 40:
            yield Example(
                rng.choice(_PROCEDURE_PROSE_PROMPTS).format(**fmt, context=rng.choice(contexts)),
                _clean(section.text),
                "procedure",
                path,
            )


def explicit_examples(skill: Skill, rng: random.Random) -> Iterable[Example]:
    for example in skill.examples:
        yield Example(_clean(example.input), _clean(example.output), "explicit", example.section)
    for section in skill.sections:
        for block in section.code_blocks:
            if len(block.code.strip()) < 10:
                continue
            topic = _title_phrase(section)
            language = block.language or "code"
            fence = f"```{block.language}\n{block.code.rstrip()}\n```"
            prompt = rng.choice(_CODE_PROMPTS).format(topic=topic, language=language)
            yield Example(prompt, fence, "explicit", section.path)


def _chunks(text: str, limit: int = REFERENCE_CHUNK_CHARS) -> Iterable[tuple[str, str]]:
    """(heading, text) chunks of a reference file, split at headings, then at paragraphs."""
    heading = "overview"
    buffer: list[str] = []

    def flush() -> Iterable[tuple[str, str]]:
        body = _clean("\n".join(buffer))
        while body:
            if len(body) <= limit:
                yield heading, body
                return
            cut = body.rfind("\n\n", 0, limit)
            cut = cut if cut > limit // 3 else limit
            yield heading, body[:cut].strip()
            body = body[cut:].strip()

    for line in text.splitlines():
        check_budget()
        match = re.match(r"^#{1,6}\s+(.*)", line)
        if match:
            yield from flush()
            heading, buffer = match.group(1).strip() or heading, []
        else:
            buffer.append(line)
    yield from flush()


def reference_examples(skill: Skill, rng: random.Random) -> Iterable[Example]:
    for reference in skill.references:
        if not reference.text or not reference.text.strip():
            continue
        for heading, chunk in _chunks(reference.text):
            if len(chunk) < 40:
                continue
            topic = _topic(_strip_markdown(heading))
            prompt = rng.choice(_REFERENCE_PROMPTS).format(ref=reference.path, topic=topic)
            yield Example(prompt, chunk, "reference", reference.path)


GENERATOR_FUNCTIONS: dict[str, Callable[[Skill, random.Random], Iterable[Example]]] = {
    "trigger": trigger_examples,
    "procedure": procedure_examples,
    "explicit": explicit_examples,
    "reference": reference_examples,
}


# ------------------------------------------------------------------------------------- build and split


def _filter(examples: Iterable[Example], dropped: Counter[str]) -> list[Example]:
    kept: list[Example] = []
    seen: set[tuple[str, str]] = set()
    seen_prompts: set[str] = set()
    for example in examples:
        prompt, completion = example.prompt.strip(), example.completion.strip()
        if not prompt or not completion:
            dropped["empty"] += 1
            continue
        if len(prompt) > MAX_PROMPT_CHARS or len(completion) > MAX_COMPLETION_CHARS:
            dropped["too_long"] += 1
            continue
        key = (" ".join(prompt.lower().split()), " ".join(completion.lower().split()))
        if key in seen:
            dropped["duplicate"] += 1
            continue
        if key[0] in seen_prompts:
            dropped["conflicting_prompt"] += 1
            continue
        seen.add(key)
        seen_prompts.add(key[0])
        kept.append(example)
    return kept


def _rng(seed: int, *parts: str) -> random.Random:
    digest = hashlib.sha256("\x00".join((str(seed), *parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def split_examples(
    examples: list[Example], *, seed: int, fraction: float = HELD_OUT_FRACTION
) -> tuple[list[Example], list[Example], list[str]]:
    """Hold out whole sections where possible (so evaluation sees unseen material), else examples.

    Trigger examples, which all come from the description, are held out per example. The result never
    leaves the held-out split empty when there are at least two examples.
    """
    if len(examples) < 2:
        return list(examples), [], []
    by_section: dict[str, list[Example]] = {}
    for example in examples:
        if example.generator != "trigger":
            by_section.setdefault(example.section, []).append(example)
    target = max(1, round(len(examples) * fraction))
    held_sections: list[str] = []
    held: set[int] = set()
    sections = sorted(by_section)
    _rng(seed, "sections").shuffle(sections)
    non_trigger = sum(len(v) for v in by_section.values())
    if len(sections) >= 3:
        budget = max(1, round(non_trigger * fraction))
        count = 0
        for name in sections:
            size = len(by_section[name])
            if count >= budget:
                break
            if count + size > budget * 2 and count > 0:
                continue
            if len(held_sections) + 1 >= len(sections):
                break
            held_sections.append(name)
            held.update(id(e) for e in by_section[name])
            count += size
    triggers = [e for e in examples if e.generator == "trigger"]
    rng = _rng(seed, "examples")
    order = list(range(len(triggers)))
    rng.shuffle(order)
    for index in order[: round(len(triggers) * fraction)]:
        held.add(id(triggers[index]))
    if not held_sections:
        rest = [e for e in examples if e.generator != "trigger"]
        order = list(range(len(rest)))
        rng.shuffle(order)
        for index in order[: max(0, target - len(held))]:
            held.add(id(rest[index]))
    if not held:
        held.add(id(examples[rng.randrange(len(examples))]))
    if len(held) == len(examples):
        held.discard(id(examples[0]))
    train = [e for e in examples if id(e) not in held]
    held_out = [e for e in examples if id(e) in held]
    return train, held_out, sorted(held_sections)


def build_dataset(skill: Skill, *, seed: int = 42, generators: Iterable[str] = GENERATORS) -> BuiltDataset:
    """All generators over ``skill``, filtered, deduplicated and split. Deterministic under ``seed``."""
    dropped: Counter[str] = Counter()
    raw: list[Example] = []
    for name in generators:
        for example in GENERATOR_FUNCTIONS[name](skill, _rng(seed, name, skill.name)):
            check_budget()
            raw.append(example)
    examples = _filter(raw, dropped)
    if not examples:
        raise DatasetError(
            f"the skill '{skill.name}' gave no usable training examples; add sections with steps, rules "
            "or examples to its body",
            code="dataset_empty",
        )
    train, held_out, held_sections = split_examples(examples, seed=seed)
    return BuiltDataset(train, held_out, dict(dropped), seed, held_sections)


def write_jsonl(dataset: BuiltDataset, folder: Path) -> dict[str, Path]:
    """Save both splits as JSONL (one record per line) so a job's data can be inspected and reproduced."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, examples in (("train", dataset.train), ("held_out", dataset.held_out)):
        path = folder / f"{split}.jsonl"
        tmp = path.with_suffix(".jsonl.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for example in examples:
                handle.write(json.dumps(example.to_record(), ensure_ascii=False) + "\n")
        tmp.replace(path)
        paths[split] = path
    return paths


def read_jsonl(path: Path) -> list[Example]:
    examples = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            examples.append(
                Example(
                    record["prompt"][0]["content"],
                    record["completion"][0]["content"],
                    record["generator"],
                    record["section"],
                    record.get("kind", "apply"),
                )
            )
    return examples
