"""Run the three arms over the evaluation cases: base, base + SKILL.md as system prompt, and adapter.

One model is loaded: the base with the adapter attached. The base arms run with the adapter disabled
(``PeftModel.disable_adapter``), so all arms share weights, precision and quantisation exactly.
Decoding is greedy; scores are the reference's token log-likelihoods under teacher forcing.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel

from skill_adapter.evaluation import metrics
from skill_adapter.evaluation.adapters import check_adapter_folder
from skill_adapter.evaluation.cases import EvalCase, check
from skill_adapter.evaluation.report import ARM_TITLES, report_notes
from skill_adapter.training.convert import ensure_model
from skill_adapter.training.hardware import detect_hardware
from skill_adapter.training.model import load_base_model, load_tokenizer

log = logging.getLogger(__name__)

ARMS = ("base", "base_with_skill", "adapter")
TEMPLATE_KWARGS = {"enable_thinking": False}  # as in training: Qwen3's answers carry no think block


@dataclass
class Prompted:
    """One case rendered for one arm: prompt ids, reference ids, and what the model made of them."""

    prompt_ids: list[int]
    target_ids: list[int]
    nll: float = 0.0
    output: str = ""
    kl: float | None = None  # summed per-token KL from base + SKILL.md to this arm, on the reference tokens


class Evaluator:
    """The loaded model and tokenizer, and the per-case operations the report is built from."""

    def __init__(self, model: Any, tokenizer: Any, *, max_new_tokens: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.device = next(model.parameters()).device
        self.end_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)

    def render(self, user: str, system: str | None) -> list[int]:
        messages = ([{"role": "system", "content": system}] if system is not None else []) + [
            {"role": "user", "content": user}
        ]
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **TEMPLATE_KWARGS
        )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def target(self, reference: str) -> list[int]:
        """The reference answer's tokens and the end-of-turn token: what training taught it to emit."""
        return [*self.tokenizer(reference, add_special_tokens=False)["input_ids"], self.end_id]

    @torch.no_grad()
    def logprobs(self, prompt_ids: list[int], target_ids: list[int]) -> torch.Tensor:
        """Next-token log-probabilities at each position of ``target_ids`` (teacher forcing): (T, vocab)."""
        ids = torch.tensor([prompt_ids + target_ids], device=self.device)
        logits = self.model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
        return torch.log_softmax(logits, dim=-1)

    def nll(self, prompt_ids: list[int], target_ids: list[int]) -> float:
        """Summed negative log-likelihood of ``target_ids`` after ``prompt_ids`` (teacher forcing)."""
        return nll_of(self.logprobs(prompt_ids, target_ids), target_ids)

    @torch.no_grad()
    def generate_many(self, prompts: list[list[int]]) -> list[str]:
        """Greedy answers, ``GENERATION_BATCH`` prompts at a time (left-padded, KV cache)."""
        from skill_adapter.training.teacher import generate_batch

        outputs: list[str] = []
        for start in range(0, len(prompts), GENERATION_BATCH):
            outputs += generate_batch(
                self.model,
                self.tokenizer,
                prompts[start : start + GENERATION_BATCH],
                max_new_tokens=self.max_new_tokens,
            )
        return [clean_output(text) for text in outputs]

    def generate(self, prompt_ids: list[int]) -> str:
        return self.generate_many([prompt_ids])[0]


GENERATION_BATCH = 8


def nll_of(logprobs: torch.Tensor, target_ids: list[int]) -> float:
    targets = torch.tensor(target_ids, device=logprobs.device)
    return float(-logprobs.gather(1, targets.unsqueeze(1)).sum())


def kl_sum(teacher: torch.Tensor, student: torch.Tensor) -> float:
    """Summed over positions: KL(teacher || student) of full next-token distributions (log-probs in)."""
    return float((teacher.exp() * (teacher - student)).sum())


def clean_output(text: str) -> str:
    """Strip a leading (empty) think block and surrounding whitespace."""
    text = text.strip()
    if text.startswith("<think>") and "</think>" in text:
        text = text.split("</think>", 1)[1]
    return text.strip()


def fit_skill_text(tokenizer: Any, skill_text: str, budget: int) -> tuple[str, int, int]:
    """The skill text cut to at most ``budget`` tokens: (text, tokens used, tokens in full)."""
    ids = tokenizer(skill_text, add_special_tokens=False)["input_ids"]
    if len(ids) <= budget:
        return skill_text, len(ids), len(ids)
    kept = max(0, budget)
    return tokenizer.decode(ids[:kept]), kept, len(ids)


def model_context(model: Any) -> int | None:
    value = getattr(model.config, "max_position_embeddings", None)
    return int(value) if value else None


def load_for_evaluation(config: dict[str, Any], adapter_path: Path) -> tuple[Any, Any]:
    """Tokenizer and the base model with the job's adapter, loaded as training loaded the base."""
    check_adapter_folder(adapter_path)
    hardware = detect_hardware()
    ensure_model(config["model"], config.get("base_model"))  # converted by training, unless since removed
    tokenizer = load_tokenizer(config["model"])
    base = load_base_model(config, hardware, for_training=False)
    if not hardware.cuda or config["adapter_type"] != "qlora":
        base = base.to(torch.device("cuda" if hardware.cuda else "cpu"))  # type: ignore[arg-type]
    model = PeftModel.from_pretrained(base, str(adapter_path), is_trainable=False)
    model.eval()
    return model, tokenizer


def run_arms(
    evaluator: Evaluator,
    cases: list[EvalCase],
    *,
    skill_text: str,
    max_context_tokens: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Score and generate every case in every arm; the report's numbers, before formatting."""
    model = evaluator.model
    context = max_context_tokens or model_context(model.get_base_model()) or 4096
    plain = [evaluator.render(case.prompt, None) for case in cases]
    targets = [evaluator.target(case.reference) for case in cases]
    wrapper = len(evaluator.render("", "")) - len(evaluator.render("", None))  # the system turn's own tokens
    room = min(
        context - len(p) - wrapper - max(len(t), evaluator.max_new_tokens) for p, t in zip(plain, targets, strict=True)
    )
    skill_used_text, skill_used, skill_total = fit_skill_text(evaluator.tokenizer, skill_text, room)
    truncated = skill_used < skill_total
    if truncated:
        log.warning(
            "the SKILL.md (%d tokens) does not fit the model's context (%d) beside the prompts; "
            "base_with_skill sees its first %d tokens",
            skill_total,
            context,
            skill_used,
        )

    runs: dict[str, list[Prompted]] = {arm: [] for arm in ARMS}
    started = time.perf_counter()
    seconds = dict.fromkeys(ARMS, 0.0)
    # Half the work scores every case under teacher forcing (likelihood, and the KL from base + SKILL.md to
    # the other arms); the other half generates, batched per arm.
    steps = 2 * len(cases)
    for index, (case, prompt_ids, target_ids) in enumerate(zip(cases, plain, targets, strict=True)):
        logprobs = {}
        for arm in ARMS:
            arm_started = time.perf_counter()
            ids = evaluator.render(case.prompt, skill_used_text) if arm == "base_with_skill" else prompt_ids
            item = Prompted(prompt_ids=ids, target_ids=target_ids)
            with contextlib.nullcontext() if arm == "adapter" else model.disable_adapter():
                logprobs[arm] = evaluator.logprobs(ids, target_ids)
            item.nll = nll_of(logprobs[arm], target_ids)
            runs[arm].append(item)
            seconds[arm] += time.perf_counter() - arm_started
        for arm in ("base", "adapter"):
            runs[arm][-1].kl = kl_sum(logprobs["base_with_skill"], logprobs[arm])
        runs["base_with_skill"][-1].kl = 0.0
        if progress is not None:
            progress((index + 1) / steps)
    done: float = len(cases)
    for arm in ARMS:
        arm_started = time.perf_counter()
        items = runs[arm]
        for start in range(0, len(items), GENERATION_BATCH):
            batch = items[start : start + GENERATION_BATCH]
            with contextlib.nullcontext() if arm == "adapter" else model.disable_adapter():
                outputs = evaluator.generate_many([item.prompt_ids for item in batch])
            for item, output in zip(batch, outputs, strict=True):
                item.output = output
            done += len(batch) / len(ARMS)
            if progress is not None:
                progress(done / steps)
        seconds[arm] += time.perf_counter() - arm_started
    return {
        "runs": runs,
        "context_tokens": context,
        "skill": {"tokens": skill_total, "tokens_used": skill_used, "truncated": truncated},
        "seconds": {arm: round(value, 3) for arm, value in seconds.items()},
        "elapsed_seconds": round(time.perf_counter() - started, 3),
    }


def summarize(cases: list[EvalCase], result: dict[str, Any]) -> dict[str, Any]:
    """Per-arm metrics, internalisation ratios, and per-example rows with best and worst cases."""
    runs: dict[str, list[Prompted]] = result["runs"]
    exact_index = [i for i, case in enumerate(cases) if case.exact]
    arms: dict[str, dict[str, Any]] = {}
    for arm in ARMS:
        items = runs[arm]
        predictions = [items[i].output for i in exact_index]
        references = [cases[i].reference for i in exact_index]
        arms[arm] = {
            "perplexity": metrics.perplexity(sum(i.nll for i in items), sum(len(i.target_ids) for i in items)),
            "accuracy": metrics.accuracy(predictions, references),
            "bleu": metrics.corpus_bleu(predictions, references),
            "chrf": metrics.corpus_chrf(predictions, references),
            "prompt_tokens_per_call": sum(len(i.prompt_ids) for i in items) / len(items),
            "scored_cases": len(exact_index),
            "seconds": result["seconds"][arm],
            "kl_to_prompted": (
                sum(i.kl or 0.0 for i in items) / max(1, sum(len(i.target_ids) for i in items))
                if all(i.kl is not None for i in items)
                else None
            ),
            **expectation_rates(cases, items),
        }
    # Accuracy, BLEU and chrF compare generated text: when no arm wrote any, they compare nothing.
    silent = bool(exact_index) and all(not runs[arm][i].output.strip() for arm in ARMS for i in exact_index)
    internalisation = {}
    for metric in ("perplexity", "accuracy", "bleu", "chrf"):
        ratio: float | None
        reason: str | None
        if silent and metric != "perplexity":
            ratio, reason = None, "every arm produced empty output on every scored case: there is no text to compare"
        else:
            ratio, reason = metrics.internalisation_ratio(*(arms[arm][metric] for arm in ARMS), metric=metric)
        internalisation[metric] = {"ratio": ratio, "reason": reason}

    kl_base, kl_adapter = arms["base"]["kl_to_prompted"], arms["adapter"]["kl_to_prompted"]
    if kl_base is None or kl_adapter is None:
        internalisation["kl_to_prompted"] = {"ratio": None, "reason": "not measured for every arm"}
    elif kl_base <= 1e-9:
        internalisation["kl_to_prompted"] = {
            "ratio": None,
            "reason": "the base model already matches base + SKILL.md on these tokens: no KL to remove",
        }
    else:
        internalisation["kl_to_prompted"] = {"ratio": 1 - kl_adapter / kl_base, "reason": None}

    examples = []
    for index, case in enumerate(cases):
        outputs = {}
        for arm in ARMS:
            item = runs[arm][index]
            outputs[arm] = {
                "output": item.output,
                "perplexity": metrics.perplexity(item.nll, len(item.target_ids)),
                "chrf": metrics.sentence_chrf(item.output, case.reference) if case.exact else None,
                "exact": metrics.exact_match(item.output, case.reference) if case.exact else None,
                "prompt_tokens": len(item.prompt_ids),
                "kl_to_prompted": item.kl / max(1, len(item.target_ids)) if item.kl is not None else None,
                "expectations": [check(e, item.output) for e in case.expectations] if case.expectations else None,
            }
        examples.append({**case.to_dict(), "outputs": outputs})
    ranked = sorted(examples, key=_example_score)
    count = min(3, len(ranked))
    return {
        "arms": arms,
        "internalisation": internalisation,
        "prompt_tokens_saved_per_call": arms["base_with_skill"]["prompt_tokens_per_call"]
        - arms["adapter"]["prompt_tokens_per_call"],
        "examples": examples,
        "best": [e["id"] for e in reversed(ranked[-count:])] if count else [],
        "worst": [e["id"] for e in ranked[:count]],
    }


def expectation_rates(cases: list[EvalCase], items: list[Prompted]) -> dict[str, Any]:
    """The share of checkable expectations an arm's outputs meet, over the cases that define any."""
    checks = [check(e, item.output) for case, item in zip(cases, items, strict=True) for e in case.expectations]
    return {
        "expectations_checked": len(checks),
        "expectation_pass_rate": sum(checks) / len(checks) if checks else None,
    }


def _example_score(example: dict[str, Any]) -> tuple[float, float]:
    """Rank by the adapter's chrF where the reference is exact, then by its (lower-is-better) perplexity."""
    adapter = example["outputs"]["adapter"]
    chrf = adapter["chrf"] if adapter["chrf"] is not None else 0.0
    return chrf, -float(adapter["perplexity"] or 0.0)


def evaluate(
    cases: list[EvalCase],
    *,
    config: dict[str, Any],
    adapter_path: Path,
    skill_text: str,
    params: dict[str, Any],
    progress: Any = None,
) -> dict[str, Any]:
    """Load the model with its adapter, run the three arms, and return the report (without ids)."""
    model, tokenizer = load_for_evaluation(config, adapter_path)
    evaluator = Evaluator(model, tokenizer, max_new_tokens=int(params["max_new_tokens"]))
    result = run_arms(
        evaluator,
        cases,
        skill_text=skill_text,
        max_context_tokens=params.get("max_context_tokens"),
        progress=progress,
    )
    report = {
        "source": params["source"],
        "limit": params.get("limit"),
        "num_examples": len(cases),
        "model": config["model"],
        "adapter_path": str(adapter_path),
        "generation": {
            "do_sample": False,
            "num_beams": 1,
            "max_new_tokens": int(params["max_new_tokens"]),
            "batch_size": GENERATION_BATCH,
        },
        "context_tokens": result["context_tokens"],
        "skill": result["skill"],
        "skill_truncated": result["skill"]["truncated"],
        "elapsed_seconds": result["elapsed_seconds"],
        "arm_titles": dict(ARM_TITLES),
        **summarize(cases, result),
    }
    report["notes"] = report_notes(report)
    return report
