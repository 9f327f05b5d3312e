"""The adapter folder check every loader runs first: present, complete, and safetensors only (never pickle)."""

from __future__ import annotations

from pathlib import Path

from skill_adapter.core.errors import EvaluationError

PICKLED_WEIGHTS = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
NOT_WEIGHTS = frozenset({"training_args.bin"})  # the Trainer's arguments, never loaded as weights


def check_adapter_folder(path: Path) -> None:
    """Refuse an adapter folder that is missing, incomplete, or holds pickled (non-safetensors) weights."""
    if not (path / "adapter_config.json").is_file():
        raise EvaluationError(f"No adapter at {path} (adapter_config.json is missing)", code="adapter_missing")
    pickled = sorted(p.name for p in path.iterdir() if p.suffix in PICKLED_WEIGHTS and p.name not in NOT_WEIGHTS)
    if pickled or not (path / "adapter_model.safetensors").is_file():
        raise EvaluationError(
            f"The adapter in {path} is not stored as safetensors "
            f"({', '.join(pickled) or 'no adapter_model.safetensors'}); weights are only loaded from "
            "adapter_model.safetensors, never from pickle files",
            code="adapter_not_safetensors",
        )
