"""The teacher of the ``distill`` recipe: the base model with the full SKILL.md as its system prompt.

It writes extra task prompts (sampled, seeded) and answers every prompt (greedy, batched, bounded new
tokens). It always runs with the base weights: before an adapter is attached, or inside
``PeftModel.disable_adapter()`` when one is. A cancel flag is checked while it generates.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from skill_adapter.datasets.distill import (
    PROMPT_WRITER_INSTRUCTION,
    DistillDataset,
    DistillParams,
    Prompt,
    answered_examples,
    cache_key,
    check_enough,
    clean_written_prompt,
    filter_prompts,
    read_dataset,
    seed_prompts,
    split_prompts,
    write_dataset,
)
from skill_adapter.skills.model import Skill

log = logging.getLogger(__name__)

TEMPLATE_KWARGS = {"enable_thinking": False}
BATCH_SIZE = 8
PROMPT_WRITER_MAX_NEW_TOKENS = 64
PROMPT_WRITER_TEMPERATURE = 1.0
PROMPT_WRITER_TOP_P = 0.95


class GenerationCancelled(Exception):
    """The job's cancel flag was set while the teacher was generating."""


class _CancelCheck(StoppingCriteria):
    """Stops ``generate`` (and marks the cancel) once the job's cancel flag is set; polls at most every
    second."""

    def __init__(self, cancelled: Callable[[], bool]) -> None:
        self.cancelled = cancelled
        self.hit = False
        self._next = 0.0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + 1.0
            self.hit = self.hit or self.cancelled()
        return torch.full((input_ids.shape[0],), self.hit, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


@contextlib.contextmanager
def base_weights(model: Any) -> Iterator[Any]:
    """The model with any PEFT adapter switched off for the duration."""
    if hasattr(model, "disable_adapter") and hasattr(model, "peft_config"):
        with model.disable_adapter():
            yield model
    else:
        yield model


def render(tokenizer: Any, user: str, system: str | None) -> list[int]:
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": user}
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **TEMPLATE_KWARGS)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def fit_skill(tokenizer: Any, skill_text: str, budget: int) -> tuple[str, int, int]:
    """The skill text cut to at most ``budget`` tokens: (text, tokens kept, tokens in full)."""
    ids = tokenizer(skill_text, add_special_tokens=False)["input_ids"]
    if len(ids) <= budget:
        return skill_text, len(ids), len(ids)
    kept = max(0, budget)
    return tokenizer.decode(ids[:kept]), kept, len(ids)


def end_id(tokenizer: Any) -> int:
    return int(tokenizer.convert_tokens_to_ids(tokenizer.eos_token))


def shared_prefix(rows: list[list[int]]) -> int:
    """How many leading tokens every row shares, leaving each row at least one token of its own."""
    if not rows:
        return 0
    first, limit = rows[0], min(len(row) for row in rows) - 1
    for i in range(max(limit, 0)):
        token = first[i]
        if any(row[i] != token for row in rows):
            return i
    return max(limit, 0)


class PrefixCache:
    """The KV cache of the tokens every teacher input starts with (chat frame + SKILL.md), computed once
    with whatever weights are active, and copied for each batch: the skill is encoded once per stage,
    not once per prompt."""

    def __init__(self, model: Any, ids: list[int]) -> None:
        self.ids = ids
        device = next(model.parameters()).device
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids], device=device), use_cache=True)
        self.cache = out.cache

    def __len__(self) -> int:
        return len(self.ids)

    def expand(self, rows: int) -> Any:
        """A fresh copy of the cache for a batch of ``rows`` (generation and forward passes extend it)."""
        cache = copy.deepcopy(self.cache)
        if rows > 1:
            cache.batch_repeat_interleave(rows)
        return cache


@torch.no_grad()
def generate_batch(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float | None = None,
    stop: StoppingCriteria | None = None,
    prefix: PrefixCache | None = None,
) -> list[str]:
    """Left-padded batched generation with the KV cache; greedy at temperature 0, else sampled.

    With ``prefix`` (every prompt starts with its tokens) the prefix's cache is reused: each prompt's own
    tokens are left-padded *after* the prefix, the padding masked out, so positions run on from the prefix
    as they would without padding (``generate`` derives them from the attention mask)."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_id(tokenizer)
    head = list(prefix.ids) if prefix is not None else []
    rests = [p[len(head) :] for p in prompts]
    if prefix is not None and any(p[: len(head)] != head or not rest for p, rest in zip(prompts, rests, strict=True)):
        raise ValueError("every prompt must start with the cached prefix and go beyond it")
    width = max(len(r) for r in rests)
    ids = torch.tensor([head + [pad] * (width - len(r)) + r for r in rests], device=device)
    mask = torch.tensor([[1] * len(head) + [0] * (width - len(r)) + [1] * len(r) for r in rests], device=device)
    extra: dict[str, Any] = {"cache": prefix.expand(len(prompts))} if prefix is not None else {}
    decoding: dict[str, Any] = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": None}
        if temperature > 0
        else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    )
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=max_new_tokens,
        num_beams=1,
        eos_token_id=end_id(tokenizer),
        pad_token_id=pad,
        use_cache=True,
        stopping_criteria=StoppingCriteriaList([stop]) if stop is not None else None,
        **decoding,
        **extra,
    )
    texts = tokenizer.batch_decode(out[:, len(head) + width :], skip_special_tokens=True)
    return [_strip_think(text) for text in texts]


def _strip_think(text: str) -> str:
    text = text.strip()
    if text.startswith("<think>") and "</think>" in text:
        text = text.split("</think>", 1)[1]
    return text.strip()


class Teacher:
    """The prompted base model: writes prompts and answers them, batch by batch, reporting progress."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        skill_text: str,
        max_new_tokens: int,
        context: int,
        temperature: float = 0.0,
        note: Callable[[str], None] = log.info,
        cancelled: Callable[[], bool] = lambda: False,
        reuse_prefix: bool = True,
    ) -> None:
        self.model = model
        self.reuse_prefix = reuse_prefix
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.note = note
        self.cancelled = cancelled
        # Room for the skill: the context less the longest prompt we accept, the answer and the chat frame.
        frame = len(render(tokenizer, "", "")) + 200
        self.skill_text, self.skill_tokens, self.skill_tokens_full = fit_skill(
            tokenizer, skill_text, context - frame - max_new_tokens
        )
        self.truncated = self.skill_tokens < self.skill_tokens_full
        if self.truncated:
            note(
                f"teacher: the SKILL.md has {self.skill_tokens_full} tokens and does not fit the model's context "
                f"({context}); the teacher sees its first {self.skill_tokens}"
            )

    def settings(self) -> dict[str, Any]:
        """The decoding settings recorded with every example."""
        return {
            "system_prompt": "SKILL.md",
            "adapter": "disabled",
            "do_sample": self.temperature > 0,
            "temperature": self.temperature,
            "max_new_tokens": self.max_new_tokens,
            "batch_size": BATCH_SIZE,
            "skill_tokens": self.skill_tokens,
            "skill_tokens_full": self.skill_tokens_full,
            "skill_truncated": self.truncated,
        }

    def _run(
        self, prompts: list[list[int]], *, what: str, max_new_tokens: int, temperature: float, top_p: float | None
    ) -> list[str]:
        outputs: list[str] = []
        stop = _CancelCheck(self.cancelled)
        with base_weights(self.model):
            self.model.eval()
            prefix = None
            if self.reuse_prefix and prompts:
                if self.cancelled():
                    raise GenerationCancelled
                prefix = PrefixCache(self.model, prompts[0][: shared_prefix(prompts)])
            for start in range(0, len(prompts), BATCH_SIZE):
                if self.cancelled():
                    raise GenerationCancelled
                outputs += generate_batch(
                    self.model,
                    self.tokenizer,
                    prompts[start : start + BATCH_SIZE],
                    max_new_tokens=max_new_tokens,
                    temperature=temperature,
                    top_p=top_p,
                    stop=stop,
                    prefix=prefix,
                )
                if stop.hit:
                    raise GenerationCancelled
                self.note(f"teacher: {len(outputs)}/{len(prompts)} {what}")
        return outputs

    def write_prompts(self, count: int, *, seed: int) -> list[str]:
        """``count`` sampled requests (seeded), the skill in the writer's context."""
        if count <= 0:
            return []
        torch.manual_seed(seed)
        prompt = render(self.tokenizer, PROMPT_WRITER_INSTRUCTION, self.skill_text)
        texts = self._run(
            [prompt] * count,
            what="prompts written",
            # A request is shorter than an answer: at most 64 tokens, and no more than the answers get (16 at least).
            max_new_tokens=min(PROMPT_WRITER_MAX_NEW_TOKENS, max(16, self.max_new_tokens)),
            temperature=PROMPT_WRITER_TEMPERATURE,
            top_p=PROMPT_WRITER_TOP_P,
        )
        return [clean_written_prompt(text) for text in texts]

    def answer(self, prompts: list[str], *, seed: int = 0) -> list[str]:
        """Answers with the skill as system prompt: greedy, or sampled (seeded) above temperature 0."""
        torch.manual_seed(seed)
        rendered = [render(self.tokenizer, text, self.skill_text) for text in prompts]
        return self._run(
            rendered, what="answers", max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=None
        )


def build_distill_dataset(
    *,
    model: Any,
    tokenizer: Any,
    skill: Skill,
    skill_file: Path,
    config: dict[str, Any],
    cache_dir: Path | None,
    note: Callable[[str], None] = log.info,
    cancelled: Callable[[], bool] = lambda: False,
) -> DistillDataset:
    """Prompts, teacher answers, filters and split; reused from ``cache_dir`` when nothing changed."""
    params = DistillParams.from_config(config)
    key = cache_key(
        model=config["model"], skill_file=skill_file, params=params, max_seq_length=int(config["max_seq_length"])
    )
    cached_folder = cache_dir / key if cache_dir is not None else None
    if cached_folder is not None and (cached := read_dataset(cached_folder)) is not None:
        note(f"teacher: reusing the dataset generated earlier for this skill, model and settings ({key})")
        return cached

    skill_text = skill_file.read_text(encoding="utf-8", errors="replace")
    model_context = int(getattr(model.config, "max_position_embeddings", 0) or 4096)
    teacher = Teacher(
        model,
        tokenizer,
        skill_text=skill_text,
        max_new_tokens=params.teacher_max_new_tokens,
        context=min(model_context, max(int(config["max_seq_length"]), 256)),
        temperature=params.temperature,
        note=note,
        cancelled=cancelled,
    )
    dropped: Counter[str] = Counter()
    prompts = seed_prompts(skill, seed=params.seed, skill_file=skill_file)
    written = teacher.write_prompts(params.num_prompts, seed=params.seed)
    prompts += [Prompt(text, "model") for text in written]
    prompts = filter_prompts(prompts, skill_text=skill_text, dropped=dropped)
    train_prompts, held_prompts = split_prompts(prompts, seed=params.seed)
    note(
        f"teacher: {len(prompts)} prompts ({len(train_prompts)} train, {len(held_prompts)} held out; "
        f"{sum(1 for p in prompts if p.source == 'model')} written by the model)"
    )
    answers = teacher.answer([p.text for p in train_prompts + held_prompts], seed=params.seed)
    train, train_sources = answered_examples(train_prompts, answers[: len(train_prompts)], dropped=dropped)
    held, held_sources = answered_examples(held_prompts, answers[len(train_prompts) :], dropped=dropped)
    dataset = DistillDataset(
        train=train,
        held_out=held,
        teacher=teacher.settings(),
        dropped=dict(dropped),
        sources={"train": dict(train_sources), "held_out": dict(held_sources)},
        seed=params.seed,
        cache_key=key,
    )
    check_enough(train, dropped=dataset.dropped, total=len(prompts))
    if cached_folder is not None:
        tmp = cached_folder.with_name(cached_folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        write_dataset(dataset, tmp)
        shutil.rmtree(cached_folder, ignore_errors=True)
        tmp.replace(cached_folder)
    return dataset
