"""Metric functions of the evaluation report, pure Python plus sacrebleu.

- ``normalize`` + ``exact_match``: accuracy is exact match after Unicode NFKC, case folding, collapsed
  whitespace and stripped surrounding quotes/punctuation.
- ``corpus_bleu`` / ``corpus_chrf``: sacrebleu's corpus scores (0-100) with its default settings
  (BLEU 13a tokenisation, chrF n=6, beta=2). sacrebleu ships its code offline; nothing is downloaded.
- ``perplexity``: exp of the mean negative log-likelihood per reference token, token-weighted over
  the corpus (the same definition as ``exp(eval_loss)`` in training).
- ``internalisation_ratio``: (adapter - base) / (base_with_skill - base), or None with a reason when the
  skill text barely moves the metric (the ratio would divide by next to nothing).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence

import sacrebleu

_SPACE = re.compile(r"\s+")
_EDGE = "\"'`.,;:!?()[]{}<> \t\n"
ZERO_DENOMINATOR_EPSILON = 1e-9


def normalize(text: str) -> str:
    """The form two answers are compared in for exact match."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", text).strip(_EDGE)


def exact_match(prediction: str, reference: str) -> bool:
    return normalize(prediction) == normalize(reference)


def accuracy(predictions: Sequence[str], references: Sequence[str]) -> float | None:
    """Share of exact matches after normalisation; None for no cases."""
    if len(predictions) != len(references):
        raise ValueError("predictions and references differ in length")
    if not references:
        return None
    return sum(exact_match(p, r) for p, r in zip(predictions, references, strict=True)) / len(references)


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> float | None:
    if not references:
        return None
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def corpus_chrf(predictions: Sequence[str], references: Sequence[str]) -> float | None:
    if not references:
        return None
    return float(sacrebleu.corpus_chrf(list(predictions), [list(references)]).score)


def sentence_chrf(prediction: str, reference: str) -> float:
    return float(sacrebleu.sentence_chrf(prediction, [reference]).score)


def perplexity(total_nll: float, total_tokens: int) -> float | None:
    """exp(total negative log-likelihood / tokens); None without tokens, inf when it overflows."""
    if total_tokens <= 0:
        return None
    try:
        return math.exp(total_nll / total_tokens)
    except OverflowError:
        return math.inf


# How much the SKILL.md in the prompt must move a metric before a ratio over that move means anything:
# perplexity 1% of its value, BLEU and chrF one point of their 0-100 scale. Any change of accuracy counts
# (it moves by whole cases). Below these the ratio divides by next to nothing and only magnifies small
# differences: on a random-initialised model a 0.1% perplexity move gave a ratio of -16.
MIN_SKILL_EFFECT: dict[str, tuple[str, float]] = {
    "perplexity": ("relative", 0.01),
    "bleu": ("points", 1.0),
    "chrf": ("points", 1.0),
}


def internalisation_ratio(
    base: float | None, base_with_skill: float | None, adapter: float | None, *, metric: str | None = None
) -> tuple[float | None, str | None]:
    """How much of the skill-in-the-prompt effect the adapter reproduces: 1.0 is all of it, 0 none.

    Works for metrics where higher is better and for perplexity (lower is better) alike, since both
    differences change sign together. None, with a reason in plain words, when the ratio would mean
    nothing: a metric missing or infinite for an arm, or a skill effect (the denominator) that is zero or
    below ``MIN_SKILL_EFFECT`` for ``metric``.
    """
    if base is None or base_with_skill is None or adapter is None:
        return None, "not measured for every arm"
    if not all(math.isfinite(v) for v in (base, base_with_skill, adapter)):
        return None, "infinite for at least one arm"
    denominator = base_with_skill - base
    if abs(denominator) < ZERO_DENOMINATOR_EPSILON:
        return None, (
            "the SKILL.md in the prompt changes nothing here (base and base + SKILL.md score the same), "
            "so there is no effect for the adapter to reproduce"
        )
    kind, least = MIN_SKILL_EFFECT.get(metric or "", ("points", 0.0))
    if kind == "relative" and abs(denominator) < least * abs(base):
        return None, (
            f"the SKILL.md in the prompt moves it by only {abs(denominator) / abs(base):.2%} "
            f"(base {base:.6g}, base + SKILL.md {base_with_skill:.6g}): too small an effect to measure the "
            "adapter against, the ratio would only magnify noise"
        )
    if kind == "points" and abs(denominator) < least:
        return None, (
            f"the SKILL.md in the prompt moves it by only {abs(denominator):.2f} points "
            f"(base {base:.6g}, base + SKILL.md {base_with_skill:.6g}): too small an effect to measure the "
            "adapter against, the ratio would only magnify noise"
        )
    return (adapter - base) / denominator, None
