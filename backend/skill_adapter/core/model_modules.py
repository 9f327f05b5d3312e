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
    """Full names of the modules with a 2-D weight, or None when the folder's weights cannot be read."""
    folder = Path(model_folder)
    try:
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            return None
        names: set[str] = set()
        for file in files:
            for tensor, shape in _header_shapes(file).items():
                if tensor.endswith(".weight") and len(shape) == 2:
                    names.add(tensor[: -len(".weight")])
        return names or None
    except (OSError, ValueError, struct.error, AttributeError):
        return None


def unknown_target_modules(targets: list[str], modules: set[str]) -> list[str]:
    """The entries of ``targets`` that match no module, as PEFT matches them (the full name or its last parts)."""
    suffixes: set[str] = {"lm_head"}  # every causal LM has one, even when it is tied to the embeddings
    for module in modules:
        parts = module.split(".")
        suffixes.update(".".join(parts[i:]) for i in range(len(parts)))
    return [target for target in targets if target not in suffixes]
