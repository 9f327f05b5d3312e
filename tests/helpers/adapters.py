"""Tiny adapters that answer differently: each is trained hard on one fixed answer, so greedy decoding
tells which adapter answered (the tiny model's own answer is noise)."""

from __future__ import annotations

from pathlib import Path

PROMPTS = ["hello", "What is this?", "Write a commit message.", "ping", "Tell me something.", "Hi there"]


def train_fixed_answer(base: str, out: Path, answer: str, *, steps: int = 60, seed: int = 0) -> Path:
    """A LoRA adapter on ``base`` that answers ``answer`` to any short prompt (safetensors, PEFT's format)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
        LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", lora_dropout=0.0, task_type="CAUSAL_LM"),
    )
    rows = []
    for prompt in PROMPTS:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True, enable_thinking=False
        )
        prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        answer_ids = [*tokenizer(answer, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
        rows.append((prompt_ids, answer_ids))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    model.train()
    for step in range(steps):
        prompt_ids, answer_ids = rows[step % len(rows)]
        ids = torch.tensor([prompt_ids + answer_ids])
        labels = torch.tensor([[-100] * len(prompt_ids) + answer_ids])
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(str(out))
    return out
