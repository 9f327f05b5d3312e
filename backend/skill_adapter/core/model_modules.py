"""The names of a base model's LoRA-capable modules, read from its safetensors headers (no torch, no weights).

A safetensors file starts with an 8-byte length and a JSON header naming every tensor with its shape, so
the API can check a request's ``target_modules`` against the model before a job exists, without importing
torch or reading a byte of the weights. A module counts when it has a 2-D ``weight`` (linear layers and
embeddings, what LoRA adapts); norms and biases do not.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit


def _header_shapes(path: Path) -> dict[str, list[int]]:
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > MAX_HEADER_BYTES:
            raise ValueError("safetensors header too large")
        header = json.loads(handle.read(length))
    return {name: entry.get("shape", []) for name, entry in header.items() if name != "__metadata__"}


def lora_module_names(model_folder: str | Path) -> set[str] | None:
    """Full names of the modules with a 2-D weight, or None when the folder's weights cannot be read.

    A sharded model whose shards are not all there (a download in progress) is named by its index alone: every
    tensor ending in ``.weight``, shapes unknown, so a check against it refuses no real layer.
    """
    folder = Path(model_folder)
    try:
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            weight_map: dict[str, str] = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            if not all((folder / shard).is_file() for shard in set(weight_map.values())):
                return {name[: -len(".weight")] for name in weight_map if name.endswith(".weight")} or None
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            return None
        names: set[str] = set()
        for file in files:
            for tensor, shape in _header_shapes(file).items():
                if tensor.endswith(".weight") and len(shape) == 2:
                    names.add(tensor[: -len(".weight")])
        return names or None
    except (OSError, ValueError, struct.error, AttributeError, KeyError, TypeError):
        return None


def unknown_target_modules(targets: list[str], modules: set[str]) -> list[str]:
    """The entries of ``targets`` that match no module, as PEFT matches them (the full name or its last parts)."""
    suffixes: set[str] = {"lm_head"}  # every causal LM has one, even when it is tied to the embeddings
    for module in modules:
        parts = module.split(".")
        suffixes.update(".".join(parts[i:]) for i in range(len(parts)))
    return [target for target in targets if target not in suffixes]


def unknown_targets_message(unknown: list[str], modules: set[str]) -> str:
    """What a refusal of ``target_modules`` says, at submission (422) and in the worker (a failed job) alike."""
    names = sorted({module.rsplit(".", 1)[-1] for module in modules})
    return (
        f"target_modules {unknown} match no linear layer of the base model; "
        f'its layers are named {names} (or use "all-linear")'
    )
