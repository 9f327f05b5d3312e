"""Tiny adapters that answer differently: each is trained hard on one fixed answer, so greedy decoding
tells which adapter answered (the tiny model's own answer is noise)."""

from __future__ import annotations

from pathlib import Path

PROMPTS = ["hello", "What is this?", "Write a commit message.", "ping", "Tell me something.", "Hi there"]


def train_fixed_answer(base: str, out: Path, answer: str, *, steps: int = 300, seed: int = 0) -> Path:
    """A LoRA adapter on ``base`` that answers ``answer`` to any short prompt (safetensors, PEFT's format).

    Trains full-batch passes over ``PROMPTS`` until greedy teacher-forced decoding gives ``answer`` on every
    one of them and on a prompt never trained on, checked after each pass (``steps`` is only the cap). A fixed
    number of steps was not enough: with the same seed, another torch build's kernels left the adapter answering
    "ravoravo" for "bravo" (it never learnt the first token). An adapter that has not learnt it by the cap
    raises here, where the cause is plain, instead of failing a serving test later."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
        LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", lora_dropout=0.0, task_type="CAUSAL_LM"),
    )
    answer_ids = [*tokenizer(answer, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]

    def row(prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True, enable_thinking=False
        )
        prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return torch.tensor([prompt_ids + answer_ids]), torch.tensor([[-100] * len(prompt_ids) + answer_ids])

    rows = [row(prompt) for prompt in PROMPTS]
    unseen = row("Some question it never saw?")

    def learnt() -> bool:
        model.eval()
        with torch.no_grad():
            for ids, labels in [*rows, unseen]:
                predicted = model(input_ids=ids).logits[0, :-1].argmax(-1)
                target = labels[0, 1:]
                if not torch.equal(predicted[target != -100], target[target != -100]):
                    model.train()
                    return False
        model.train()
        return True

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        for ids, labels in rows:
            (model(input_ids=ids, labels=labels).loss / len(rows)).backward()
        optimizer.step()
        optimizer.zero_grad()
        if learnt():
            break
    else:
        raise AssertionError(f"the adapter did not learn to answer {answer!r} in {steps} passes")
    model.save_pretrained(str(out))
    return out
