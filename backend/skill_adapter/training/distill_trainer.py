"""The ``kl`` loss of the distill recipe: per-token KL from the prompted teacher to the student.

Teacher and student are the same PEFT model. On each batch the student (adapter on) reads the user's
prompt alone; the teacher (``disable_adapter()``, no gradient) reads the SKILL.md as system prompt and
the same prompt. Both are teacher-forced on the teacher's own answer, and the loss compares their next-
token distributions on the answer's positions, as in Prompt Baking (arXiv 2409.13697).

Why not a TRL trainer: ``GKDTrainer`` feeds the teacher and the student the same input ids, so the skill
could not be in the teacher's context only, and it wants a second model object; the experimental
``SDFTTrainer`` (privileged context) is on-policy: the student generates at every step, which a 2-core
CPU cannot afford. A ``Trainer`` subclass with its own ``compute_loss`` keeps TRL's/HF's loop,
checkpoints, callbacks and resume.
"""

from __future__ import annotations

from typing import Any

import torch
from datasets import Dataset
from transformers import Trainer

from skill_adapter.datasets.builder import Example
from skill_adapter.training.teacher import base_weights, end_id, render


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
    top_s = student_logp.gather(-1, index)
    rest_t = torch.log1p(-top_t.exp().sum(-1).clamp(max=1 - 1e-6))
    rest_s = torch.log1p(-top_s.exp().sum(-1).clamp(max=1 - 1e-6))
    head = (top_t.exp() * (top_t - top_s)).sum(-1)
    return head + rest_t.exp() * (rest_t - rest_s)


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
        teacher_ids, teacher_mask, teacher_positions = self._pad([f["teacher_ids"] for f in features])
        longest = max(f["answer_len"] for f in features)
        answer_mask = [[0.0] * (longest - f["answer_len"]) + [1.0] * f["answer_len"] for f in features]
        return {
            "input_ids": student_ids,
            "attention_mask": student_mask,
            "position_ids": student_positions,
            "teacher_ids": teacher_ids,
            "teacher_mask": teacher_mask,
            "teacher_positions": teacher_positions,
            "answer_mask": torch.tensor(answer_mask),
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
