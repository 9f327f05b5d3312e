"""The ``kl`` loss of the distill recipe: per-token KL from the prompted teacher to the student.

Teacher and student are the same PEFT model. On each batch the student (adapter on) reads the user's
prompt alone; the teacher (``disable_adapter()``, no gradient) reads the SKILL.md as system prompt and
the same prompt. Both are teacher-forced on the teacher's own answer, and the loss compares their next-
token distributions on the answer's positions, as in Prompt Baking (arXiv 2409.13697).

The teacher's side does not change during training (the adapter is off for it), so its targets are
computed once before the first step (:func:`teacher_targets`: the top-k log-probabilities per answer token,
the SKILL.md prefix encoded once and its KV cache reused for every example) instead of once per step and
epoch. Only ``top_k`` 0 (the whole vocabulary, too large to keep) runs the teacher at every step.

Why not a TRL trainer: ``GKDTrainer`` feeds the teacher and the student the same input ids, so the skill
could not be in the teacher's context only, and it wants a second model object; the experimental
``SDFTTrainer`` (privileged context) is on-policy: the student generates at every step, which a 2-core
CPU cannot afford. A ``Trainer`` subclass with its own ``compute_loss`` keeps TRL's/HF's loop,
checkpoints, callbacks and resume.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from datasets import Dataset
from transformers import Trainer

from skill_adapter.datasets.builder import Example
from skill_adapter.training.teacher import (
    GenerationCancelled,
    PrefixCache,
    base_weights,
    end_id,
    render,
    shared_prefix,
)

TARGET_BATCH = 4


def _bucket_kl(top_t: torch.Tensor, top_s: torch.Tensor) -> torch.Tensor:
    """KL over the given tokens' log-probabilities plus one bucket for the rest of the vocabulary."""
    rest_t = torch.log1p(-top_t.exp().sum(-1).clamp(max=1 - 1e-6))
    rest_s = torch.log1p(-top_s.exp().sum(-1).clamp(max=1 - 1e-6))
    head = (top_t.exp() * (top_t - top_s)).sum(-1)
    return head + rest_t.exp() * (rest_t - rest_s)


def targets_kl(top_t: torch.Tensor, index: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """:func:`topk_kl` against stored teacher targets: ``top_t`` the teacher's top-k log-probabilities and
    ``index`` their token ids, both ``(..., k)``; the student's logits ``(..., vocab)``."""
    student_logp = torch.log_softmax(student_logits.float(), dim=-1)
    return _bucket_kl(top_t.float(), student_logp.gather(-1, index.long()))


def topk_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Per-position KL(teacher || student) over the teacher's ``top_k`` tokens plus one bucket for the
    rest of the vocabulary (a proper KL: 0 when the logits are equal, positive otherwise, at most the
    full KL). ``top_k <= 0`` or at least the vocabulary: the full KL. Shapes ``(..., vocab)`` -> ``(...)``.
    """
    teacher_logp = torch.log_softmax(teacher_logits.float(), dim=-1)
    student_logp = torch.log_softmax(student_logits.float(), dim=-1)
    if top_k <= 0 or top_k >= teacher_logp.shape[-1]:
        return (teacher_logp.exp() * (teacher_logp - student_logp)).sum(-1)
    top_t, index = teacher_logp.topk(top_k, dim=-1)
    return _bucket_kl(top_t, student_logp.gather(-1, index))


def kl_records(examples: list[Example], *, tokenizer: Any, skill_text: str, max_length: int) -> Dataset:
    """Token ids for both views of each example, and the answer's length (answer plus end of turn)."""
    rows = []
    end = end_id(tokenizer)
    for example in examples:
        answer = [*tokenizer(example.completion, add_special_tokens=False)["input_ids"], end]
        student = render(tokenizer, example.prompt, None)
        teacher = render(tokenizer, example.prompt, skill_text)
        room = max_length - len(student)
        answer = answer[: max(1, room)]
        rows.append({"student_ids": student + answer, "teacher_ids": teacher + answer, "answer_len": len(answer)})
    return Dataset.from_list(rows)


@torch.no_grad()
def teacher_targets(
    model: Any,
    rows: list[dict[str, Any]],
    *,
    top_k: int,
    batch_size: int = TARGET_BATCH,
    reuse_prefix: bool = True,
    cancelled: Callable[[], bool] = lambda: False,
) -> list[dict[str, Any]]:
    """Each row of :func:`kl_records` with the teacher's targets added, computed once with the adapter
    disabled: ``teacher_top`` (answer tokens x ``top_k`` log-probabilities, float32) and ``teacher_index``
    (their token ids). The tokens every teacher view starts with (chat frame + SKILL.md) are encoded once
    and their KV cache copied per batch; each batch's own tokens are right-padded after it. ``cancelled`` is
    polled before every batch: once it is true, :class:`GenerationCancelled` is raised."""
    if not rows:
        return []
    device = next(model.parameters()).device
    views = [list(row["teacher_ids"]) for row in rows]
    out: list[dict[str, Any]] = []
    was_training = model.training
    with base_weights(model):
        model.eval()
        prefix = PrefixCache(model, views[0][: shared_prefix(views)]) if reuse_prefix else None
        head = len(prefix) if prefix is not None else 0
        for start in range(0, len(rows), batch_size):
            if cancelled():
                model.train(was_training)
                raise GenerationCancelled
            chunk = rows[start : start + batch_size]
            rests = [view[head:] for view in views[start : start + batch_size]]
            width = max(len(r) for r in rests)
            ids = torch.tensor([r + [0] * (width - len(r)) for r in rests], device=device)
            mask = torch.tensor([[1] * (head + len(r)) + [0] * (width - len(r)) for r in rests], device=device)
            positions = torch.arange(head, head + width, device=device).expand(len(rests), -1)
            kwargs: dict[str, Any] = {"cache": prefix.expand(len(rests))} if prefix is not None else {}
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, **kwargs).logits
            for i, (row, rest) in enumerate(zip(chunk, rests, strict=True)):
                n = int(row["answer_len"])
                # positions len - n - 1 .. len - 2 predict the n answer tokens
                logp = torch.log_softmax(logits[i, len(rest) - n - 1 : len(rest) - 1].float(), dim=-1)
                top, index = logp.topk(min(top_k, logp.shape[-1]), dim=-1)
                out.append({**row, "teacher_top": top.cpu(), "teacher_index": index.to(torch.int32).cpu()})
    model.train(was_training)
    return out


class KLCollator:
    """Left-pads both views, so every row's answer ends at the last position: the logits of the last
    ``longest answer + 1`` positions then cover every answer token, and nothing else needs the vocabulary
    projection (``logits_to_keep``), which keeps memory at batch x answer x vocabulary."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def _pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.tensor([[self.pad_id] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return ids, mask, positions

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        student_ids, student_mask, student_positions = self._pad([f["student_ids"] for f in features])
        longest = max(f["answer_len"] for f in features)
        answer_mask = [[0.0] * (longest - f["answer_len"]) + [1.0] * f["answer_len"] for f in features]
        batch = {
            "input_ids": student_ids,
            "attention_mask": student_mask,
            "position_ids": student_positions,
            "answer_mask": torch.tensor(answer_mask),
        }
        if all("teacher_top" in f for f in features):  # stored targets, left-padded like the answers
            k = features[0]["teacher_top"].shape[-1]
            top = torch.zeros(len(features), longest, k)
            index = torch.zeros(len(features), longest, k, dtype=torch.int64)
            for i, f in enumerate(features):
                n = int(f["answer_len"])
                top[i, longest - n :] = f["teacher_top"]
                index[i, longest - n :] = f["teacher_index"].long()
            return {**batch, "teacher_top": top, "teacher_index": index}
        teacher_ids, teacher_mask, teacher_positions = self._pad([f["teacher_ids"] for f in features])
        return {
            **batch,
            "teacher_ids": teacher_ids,
            "teacher_mask": teacher_mask,
            "teacher_positions": teacher_positions,
        }


class KLDistillTrainer(Trainer):
    """``Trainer`` whose loss is the mean per-token top-k KL from the adapter-disabled, skill-prompted
    teacher to the adapter student."""

    def __init__(self, *args: Any, top_k: int = 64, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.top_k = top_k

    def compute_loss(
        self, model: Any, inputs: dict[str, torch.Tensor], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        mask = inputs["answer_mask"]
        keep = mask.shape[1] + 1  # the positions that predict the answer tokens, and the last one
        teacher_logits = None
        if "teacher_top" not in inputs:  # top_k 0: the whole vocabulary, from the teacher at every step
            with torch.no_grad(), base_weights(model):
                teacher_logits = model(
                    input_ids=inputs["teacher_ids"],
                    attention_mask=inputs["teacher_mask"],
                    position_ids=inputs["teacher_positions"],
                    logits_to_keep=keep,
                ).logits[:, :-1]
        outputs = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            position_ids=inputs["position_ids"],
            logits_to_keep=keep,
        )
        student_logits = outputs.logits[:, :-1]
        if teacher_logits is None:
            per_token = targets_kl(inputs["teacher_top"], inputs["teacher_index"], student_logits)
        else:
            per_token = topk_kl(teacher_logits, student_logits, self.top_k)
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1)
        return (loss, outputs) if return_outputs else loss

    def prediction_step(
        self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool, ignore_keys: list[str] | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """The validation loss is the same KL on the held-out split (there are no labels to predict)."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None
