"""Dataset statistics with the chosen model's tokenizer, through ``tokenizers`` only (no torch in the API)."""

from __future__ import annotations

import statistics
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skill_adapter.datasets.builder import BuiltDataset, Example

if TYPE_CHECKING:
    from skill_adapter.datasets.distill import DistillDataset

CHARS_PER_TOKEN_ESTIMATE = 4


@lru_cache(maxsize=8)
def _load_tokenizer(path: str, mtime: float) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(path)


def _render(example: Example) -> str:
    """The text the model sees: ChatML, the template Qwen models use."""
    return f"<|im_start|>user\n{example.prompt}<|im_end|>\n<|im_start|>assistant\n{example.completion}<|im_end|>\n"


def token_lengths(examples: list[Example], tokenizer_json: Path | None) -> tuple[list[int], bool]:
    """Token count per example, and whether they were counted exactly (False: estimated from characters)."""
    if tokenizer_json is None or not tokenizer_json.is_file():
        return [max(1, len(_render(e)) // CHARS_PER_TOKEN_ESTIMATE) for e in examples], False
    tokenizer = _load_tokenizer(str(tokenizer_json), tokenizer_json.stat().st_mtime)
    encodings = tokenizer.encode_batch([_render(e) for e in examples], add_special_tokens=False)
    return [len(encoding.ids) for encoding in encodings], True


def _summary(lengths: list[int]) -> dict[str, float | int]:
    if not lengths:
        return {"min": 0, "max": 0, "mean": 0.0, "p50": 0, "p95": 0, "total": 0}
    ordered = sorted(lengths)
    return {
        "min": ordered[0],
        "max": ordered[-1],
        "mean": round(statistics.fmean(ordered), 1),
        "p50": ordered[len(ordered) // 2],
        "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
        "total": sum(ordered),
    }


def dataset_stats(
    dataset: BuiltDataset | DistillDataset, *, tokenizer_json: Path | None, max_seq_length: int
) -> dict[str, Any]:
    """Counts per generator and split, token-length statistics, and how many exceed ``max_seq_length``."""
    everything = dataset.train + dataset.held_out
    lengths, exact = token_lengths(everything, tokenizer_json)
    train_lengths = lengths[: len(dataset.train)]
    return {
        "train_examples": len(dataset.train),
        "held_out_examples": len(dataset.held_out),
        "by_generator": dataset.counts(),
        "held_out_sections": dataset.held_out_sections,
        "dropped": dataset.dropped,
        "tokens": {
            "exact": exact,
            "tokenizer": str(tokenizer_json) if exact else None,
            "all": _summary(lengths),
            "train": _summary(train_lengths),
        },
        "max_seq_length": max_seq_length,
        "over_max_seq_length": sum(1 for n in lengths if n > max_seq_length),
        "seed": dataset.seed,
    }


def find_tokenizer_json(model: str) -> Path | None:
    """The model's ``tokenizer.json``: in a local folder, or already in the Hugging Face cache (no download)."""
    local = Path(model).expanduser()
    if local.is_dir():
        candidate = local / "tokenizer.json"
        return candidate if candidate.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "tokenizer.json")
    except Exception:  # an id the hub library refuses: no statistics, not an error
        return None
    return Path(cached) if isinstance(cached, str) else None
