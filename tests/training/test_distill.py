"""The distill recipe on the tiny model: the KL loss, the teacher's view, reproducibility, and a whole job."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

from skill_adapter import crud
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.core.errors import DatasetError
from skill_adapter.datasets.distill import (
    Prompt,
    copies_skill,
    degenerate_reason,
    filter_prompts,
    seed_prompts,
    split_prompts,
)
from skill_adapter.skills.folder import load_skill_path
from skill_adapter.training.distill_trainer import topk_kl
from skill_adapter.training.teacher import GenerationCancelled, Teacher, build_distill_dataset

TINY_CONFIG = {
    "model": "tiny",
    "seed": 7,
    "max_seq_length": 512,
    "distill_prompts": 4,
    "teacher_max_new_tokens": 8,
    "teacher_temperature": 1.0,  # the tiny model's greedy answers are empty: sampling gives it text
}


SHORT_SKILL = """---
name: haiku
description: Writes haiku. Use when the user asks for a haiku or wants a short poem about nature.
---

# Haiku

Write three lines of five, seven and five syllables.

## Rules

- Name a season.
- No rhyme.

## Example

Input: a haiku about rain
Output: Spring rain on the roof / the old cat does not look up / puddles fill the path
"""


def short_skill(root: Path) -> Path:
    """A small skill, so the tiny teacher's prompts stay short and the tests fast."""
    folder = root / "haiku"
    folder.mkdir(exist_ok=True)
    (folder / "SKILL.md").write_text(SHORT_SKILL, encoding="utf-8")
    return folder / "SKILL.md"


@pytest.mark.parametrize("top_k", [0, 5])
def test_kl_is_zero_for_equal_logits_and_positive_otherwise(top_k: int) -> None:
    torch.manual_seed(0)
    teacher = torch.randn(2, 3, 50)
    assert torch.allclose(topk_kl(teacher, teacher.clone(), top_k), torch.zeros(2, 3), atol=1e-5)
    student = teacher + torch.randn(2, 3, 50)
    kl = topk_kl(teacher, student, top_k)
    assert (kl > 0).all()
    if top_k:  # the bucketed top-k KL never exceeds the full KL
        assert (kl <= topk_kl(teacher, student, 0) + 1e-5).all()


def test_prompt_filters_and_split(skills_root: Path) -> None:
    skill_file = skills_root / "commit-messages" / "SKILL.md"
    (skill_file.parent / "evals").mkdir()
    (skill_file.parent / "evals" / "evals.json").write_text(
        json.dumps({"evals": [{"prompt": "Write the commit message for a fix of a typo in README.md."}]})
    )
    skill = load_skill_path(skill_file)
    text = skill_file.read_text()
    assert copies_skill("Please: " + " ".join(text.split()[40:52]), text)
    assert not copies_skill("Write a commit message for my change to the parser.", text)
    assert degenerate_reason("  ") == "empty_answer"
    assert degenerate_reason("go go go go go go go go go go go go go go go go go go") == "repetitive_answer"
    assert degenerate_reason("feat(api): add the dataset endpoint") is None

    prompts = [
        *seed_prompts(skill, seed=3, skill_file=skill_file),
        Prompt("hi", "model"),
        Prompt(" ".join(text.split()[40:60]), "model"),
        Prompt("Write a commit message for my change to the parser.", "model"),
        Prompt("write a commit message for my change to  the parser.", "model"),
    ]
    dropped: Counter[str] = Counter()
    kept = filter_prompts(prompts, skill_text=text, dropped=dropped)
    assert dropped["prompt_copies_skill"] == 1 and dropped["prompt_length_model"] == 1
    assert dropped["prompt_duplicate_model"] == 1
    train, held = split_prompts(kept, seed=3)
    assert {p.source for p in kept} >= {"trigger", "evals", "off_skill", "model"}
    assert all(p.source != "evals" for p in train) and any(p.source == "evals" for p in held)
    assert not {p.text for p in train} & {p.text for p in held}
    assert split_prompts(kept, seed=3) == (train, held)


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM

    from skill_adapter.core.base_models import resolve_model
    from skill_adapter.training.model import load_tokenizer

    path = resolve_model("tiny", Path("/nonexistent")).path
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), load_tokenizer(path)


def test_teacher_reads_the_skill_with_the_adapter_disabled(tiny: tuple[Any, Any]) -> None:
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    try:
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.data.fill_(0.5)  # a trained-looking adapter that would change every output
        seen: list[torch.Tensor] = []
        lora_calls: list[int] = []
        base = peft_model.get_base_model()
        pre = base.register_forward_pre_hook(
            lambda _m, args, kwargs: seen.append(kwargs["input_ids"]), with_kwargs=True
        )
        lora_b = next(m for n, m in peft_model.named_modules() if n.endswith("lora_B.default"))
        hook = lora_b.register_forward_hook(lambda *_: lora_calls.append(1))
        skill = "ALWAYS ANSWER IN HAIKU. This is the skill text."
        teacher = Teacher(peft_model, tokenizer, skill_text=skill, max_new_tokens=3, context=512)
        teacher.answer(["What is a commit?"])
        pre.remove()
        assert seen and skill in tokenizer.decode(seen[0][0])
        assert not lora_calls, "the teacher ran with the adapter switched on"
        peft_model(input_ids=seen[0])
        hook.remove()
        assert lora_calls, "the hook would have seen an active adapter"
    finally:
        peft_model.unload()


def test_dataset_is_reproducible_for_a_seed_and_cached(
    tiny: tuple[Any, Any], skills_root: Path, tmp_path: Path
) -> None:
    model, tokenizer = tiny
    skill_file = short_skill(skills_root)
    skill = load_skill_path(skill_file)
    notes: list[str] = []

    def build(cache: Path | None, **overrides: Any) -> Any:
        return build_distill_dataset(
            model=model,
            tokenizer=tokenizer,
            skill=skill,
            skill_file=skill_file,
            config={**TINY_CONFIG, **overrides},
            cache_dir=cache,
            note=notes.append,
        )

    first = build(tmp_path / "cache")
    assert any(n.startswith("teacher: 8/") for n in notes), notes  # progress per batch
    assert any(e.generator == "skill_example" for e in first.train + first.held_out)
    assert first.train and first.held_out and first.teacher["adapter"] == "disabled"
    assert {e.generator for e in first.train} >= {"trigger", "off_skill", "model"}
    again = build(None)
    assert [(e.prompt, e.completion) for e in again.train] == [(e.prompt, e.completion) for e in first.train]
    notes.clear()
    cached = build(tmp_path / "cache")
    assert any("reusing" in n for n in notes) and cached.train == first.train
    other = build(None, seed=8)
    assert [e.completion for e in other.train] != [e.completion for e in first.train]

    with pytest.raises(DatasetError) as failure:  # greedy: the tiny model answers nothing usable
        build(None, teacher_temperature=0.0)
    assert failure.value.code == "distill_too_few_examples" and "empty_answer" in failure.value.message

    calls = iter(range(100))
    with pytest.raises(GenerationCancelled):
        build_distill_dataset(
            model=model,
            tokenizer=tokenizer,
            skill=skill,
            skill_file=skill_file,
            config={**TINY_CONFIG, "distill_prompts": 40},
            cache_dir=None,
            cancelled=lambda: next(calls) >= 2,
        )


def test_a_long_skill_is_truncated_for_the_teacher(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    notes: list[str] = []
    teacher = Teacher(model, tokenizer, skill_text="rule " * 3000, max_new_tokens=16, context=512, note=notes.append)
    assert teacher.truncated and teacher.settings()["skill_truncated"] and teacher.skill_tokens < 512
    assert any("does not fit" in n for n in notes)


@pytest.mark.slow
def test_distill_job_end_to_end_on_tiny(settings: Settings, skills_root: Path, client: Any) -> None:
    from skill_adapter.core.db import init_db
    from skill_adapter.evaluation.jobs import create_evaluation, execute_evaluation
    from skill_adapter.pipeline import execute_job
    from skill_adapter.schemas import TrainingParams
    from skill_adapter.service import create_training_job

    init_db(settings)
    params = {
        "recipe": "distill",
        "distill_loss": "kl",
        "num_epochs": 1,
        "batch_size": 4,
        "gradient_accumulation_steps": 1,
        "distill_prompts": 4,
        "teacher_max_new_tokens": 8,
        "teacher_temperature": 1.0,
    }
    with session_scope(settings) as session:
        job_id = create_training_job(
            session=session,
            skill_file=short_skill(skills_root),
            params=TrainingParams.model_validate(params),
            settings=settings,
        ).id
    assert execute_job(job_id, settings=settings) == "succeeded"
    dataset = client.get(f"/api/training/{job_id}/dataset").json()
    assert dataset["recipe"] == "distill" and dataset["count"] > 0
    assert dataset["summary"]["teacher"]["adapter"] == "disabled"
    assert {e["source"] for e in dataset["examples"]} >= {"trigger", "off_skill"}
    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
        assert job.dataset_stats["distill"]["train"] == len([e for e in dataset["examples"] if e["split"] == "train"])
        logs = [line.message for line in crud.read_logs(session=session, job_id=job_id, after=0, limit=1000)]
        points = crud.read_metrics(session=session, job_id=job_id, after=0, limit=1000)
        assert [p.eval_loss for p in points if p.eval_loss is not None], "the held-out KL is the validation loss"
        evaluation = create_evaluation(session=session, job_id=job_id, params={"max_new_tokens": 4}, settings=settings)
        evaluation_id = evaluation.id
    assert any("KL loss" in line for line in logs) and any(line.startswith("teacher: ") for line in logs)
    assert execute_evaluation(evaluation_id, settings=settings) == "succeeded"
    with session_scope(settings) as session:
        report = crud.get_evaluation(session=session, evaluation_id=evaluation_id).report
    assert report is not None
    arms = report["arms"]
    assert arms["base_with_skill"]["kl_to_prompted"] == 0
    assert arms["base"]["kl_to_prompted"] > 0 and arms["adapter"]["kl_to_prompted"] > 0
    assert report["internalisation"]["kl_to_prompted"]["ratio"] is not None
    assert client.get("/api/training/train-000000000000/dataset").status_code == 404


def test_kl_batch_lines_up_the_answer_tokens_of_both_views(tiny: tuple[Any, Any]) -> None:
    """Left-padded rows of different lengths: the loss on a batch equals the mean of the rows' own
    losses computed without padding, and it is 0 when the teacher sees what the student sees."""
    from skill_adapter.datasets.builder import Example
    from skill_adapter.training.distill_trainer import KLCollator, KLDistillTrainer, kl_records

    model, tokenizer = tiny
    torch.set_grad_enabled(False)
    examples = [Example("Short?", "yes it is", "model", "s"), Example("A longer question here?", "no", "model", "s")]
    trainer = KLDistillTrainer.__new__(KLDistillTrainer)
    trainer.top_k = 0
    collate = KLCollator(tokenizer.pad_token_id)
    same = kl_records(examples, tokenizer=tokenizer, skill_text="", max_length=256)
    same = same.map(lambda row: {"teacher_ids": row["student_ids"]})
    assert float(trainer.compute_loss(model, collate(list(same)))) == pytest.approx(0.0, abs=1e-6)
    rows = list(kl_records(examples, tokenizer=tokenizer, skill_text="Answer in French.", max_length=256))
    batch = float(trainer.compute_loss(model, collate(rows)))
    single = [float(trainer.compute_loss(model, collate([row]))) for row in rows]
    weights = [row["answer_len"] for row in rows]
    assert batch > 0
    torch.set_grad_enabled(True)
    assert batch == pytest.approx(sum(s * w for s, w in zip(single, weights, strict=True)) / sum(weights), rel=1e-3)


def _count_tokens(model: Any) -> tuple[list[int], Any]:
    """Tokens each forward pass of ``model`` reads, and the hook's handle."""
    seen: list[int] = []
    handle = model.register_forward_pre_hook(
        lambda _m, args, kwargs: seen.append(int(kwargs["input_ids"].numel())), with_kwargs=True
    )
    return seen, handle


def test_teacher_encodes_the_skill_once_and_answers_as_without_the_cache(tiny: tuple[Any, Any]) -> None:
    """The SKILL.md prefix's KV cache is reused for every prompt: the skill's tokens are read by one forward
    pass, not once per prompt, and the (seeded, sampled) answers are those of the full prompts."""
    model, tokenizer = tiny
    skill = "ALWAYS ANSWER IN HAIKU. " * 12
    prompts = ["What is a commit?", "Write a haiku about rain, please.", "Name a colour.", "Say hi"] * 3
    answers = {}
    for reuse in (False, True):
        teacher = Teacher(
            model, tokenizer, skill_text=skill, max_new_tokens=6, context=1024, temperature=1.0, reuse_prefix=reuse
        )
        seen, handle = _count_tokens(model)
        try:
            answers[reuse] = teacher.answer(prompts, seed=3)
        finally:
            handle.remove()
        assert not teacher.truncated
        prefills = [n for n in seen if n >= teacher.skill_tokens]  # the passes that read the skill
        assert len(prefills) == (1 if reuse else 2), (reuse, seen)  # once, or once per batch of 8 prompts
    assert answers[True] == answers[False]
    assert any(answers[True])


def test_stored_teacher_targets_give_the_live_teachers_loss(tiny: tuple[Any, Any]) -> None:
    """The teacher's top-k targets computed once (prefix cache, right padding) line up with the answer
    tokens: the loss on them equals the loss with the teacher run live at the step, batch by batch."""
    from skill_adapter.datasets.builder import Example
    from skill_adapter.training.distill_trainer import KLCollator, KLDistillTrainer, kl_records, teacher_targets

    model, tokenizer = tiny
    examples = [
        Example("Short?", "yes it is", "model", "s"),
        Example("A longer question here, with more words?", "no", "model", "s"),
        Example("Third one", "a much longer answer than the others, going on", "model", "s"),
    ]
    rows = list(kl_records(examples, tokenizer=tokenizer, skill_text="Answer in French. " * 10, max_length=256))
    seen, handle = _count_tokens(model)
    try:
        stored = teacher_targets(model, rows, top_k=8, batch_size=2)
    finally:
        handle.remove()
    assert len(seen) == 3  # the prefix once, then two batches of the examples' own tokens
    assert sum(seen) < sum(len(row["teacher_ids"]) for row in rows)
    assert [tuple(r["teacher_top"].shape) for r in stored] == [(r["answer_len"], 8) for r in rows]
    trainer = KLDistillTrainer.__new__(KLDistillTrainer)
    trainer.top_k = 8
    collate = KLCollator(tokenizer.pad_token_id)
    with torch.no_grad():
        live = float(trainer.compute_loss(_Shifted(model), collate(rows)))
        kept = float(trainer.compute_loss(_Shifted(model), collate(stored)))
    assert live > 0
    assert kept == pytest.approx(live, rel=1e-4)


def test_a_cancel_stops_the_teacher_targets_pass_between_batches(tiny: tuple[Any, Any]) -> None:
    """The KL targets are a teacher pass over every answer before the first training step: a cancel set
    during it stops it at the next batch instead of after the last one."""
    from skill_adapter.datasets.builder import Example
    from skill_adapter.training.distill_trainer import kl_records, teacher_targets

    model, tokenizer = tiny
    examples = [Example(f"Question number {i}?", f"answer {i} here", "model", "s") for i in range(6)]
    rows = list(kl_records(examples, tokenizer=tokenizer, skill_text="Answer in French. " * 10, max_length=256))
    polls = iter(range(100))
    mode = model.training
    seen, handle = _count_tokens(model)
    try:
        with pytest.raises(GenerationCancelled):
            teacher_targets(model, rows, top_k=4, batch_size=1, cancelled=lambda: next(polls) >= 2)
    finally:
        handle.remove()
    assert len(seen) == 3  # the prefix, then the two batches before the cancel was seen; not six
    assert model.training == mode  # the pass switched to eval mode and back, cancel or not
    uncancelled = teacher_targets(model, rows, top_k=4, batch_size=1, cancelled=lambda: False)
    assert len(uncancelled) == len(rows)


class _Shifted(torch.nn.Module):
    """A student whose logits differ from the teacher's (the base model): its own weights are the
    model's, plus a fixed shift of the logits; ``disable_adapter`` gives the plain model."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.inner = model
        self.peft_config = {}
        self._off = False

    def disable_adapter(self) -> Any:
        import contextlib

        @contextlib.contextmanager
        def off() -> Any:
            self._off = True
            try:
                yield
            finally:
                self._off = False

        return off()

    def forward(self, **kwargs: Any) -> Any:
        out = self.inner(**kwargs)
        if not self._off:
            out.logits = out.logits + torch.linspace(0, 1, out.logits.shape[-1])
        return out
