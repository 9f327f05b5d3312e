"""Serving our adapters on vLLM when one machine is not enough (torch-free; vLLM is not a dependency).

``skill-adapter export-vllm JOB_OR_SKILL ...`` prints ``vllm serve BASE --enable-lora --lora-modules
name=path ...`` for the chosen adapters; clients then ask vLLM for ``"model": name``.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from skill_adapter.core.base_models import same_model
from skill_adapter.core.config import Settings
from skill_adapter.core.errors import InvalidParameterError, JobNotFoundError
from skill_adapter.serving.catalog import Adapter, Catalog
from skill_adapter.serving.protocol import ServingError

# vLLM accepts these values of --max-lora-rank.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def adapters_for(names: list[str], *, settings: Settings) -> list[Adapter]:
    """The adapters ``names`` name (job ids or skill names), refused when unknown."""
    catalog = Catalog(settings)
    found = []
    for name in names:
        try:
            adapter = catalog.resolve(name)
        except ServingError:
            raise JobNotFoundError(f"{name!r} is neither a succeeded job's id nor a trained skill's name") from None
        if adapter is None:
            raise InvalidParameterError(f"{name!r} is the base model, not an adapter")
        found.append(adapter)
    return found


def base_for_vllm(recorded: str) -> str:
    """The base as vLLM loads it: a folder made absolute (adapters record folders under the checkout
    relative to it), a hub id as it is."""
    folder = Path(recorded).expanduser()
    return str(folder.resolve()) if folder.is_dir() else recorded


def lora_rank(adapter: Adapter) -> int:
    try:
        return int(json.loads((adapter.path / "adapter_config.json").read_text(encoding="utf-8"))["r"])
    except (OSError, ValueError, KeyError, TypeError):
        return 16


def vllm_command(adapters: list[Adapter], *, port: int = 8000) -> dict[str, Any]:
    """The ``vllm serve`` arguments that serve ``adapters`` (all on one base) under their skill names."""
    first = adapters[0]
    for adapter in adapters[1:]:
        if not same_model(adapter.base, first.base):
            raise InvalidParameterError(
                f"{adapter.id} was trained on {adapter.base!r} and {first.id} on {first.base!r}: one vLLM server "
                "serves adapters of one base model; run one command per base"
            )
    skill_counts: dict[str, int] = {}
    for adapter in adapters:
        skill_counts[adapter.skill_name] = skill_counts.get(adapter.skill_name, 0) + 1
    modules = {}
    for adapter in adapters:
        unique = adapter.skill_name and skill_counts[adapter.skill_name] == 1
        modules[adapter.skill_name if unique else adapter.id] = str(adapter.path.resolve())
    needed = max(lora_rank(a) for a in adapters)
    rank = next((r for r in VLLM_LORA_RANKS if r >= needed), needed)
    base = base_for_vllm(first.base)
    argv = ["vllm", "serve", base, "--enable-lora", "--lora-modules"]
    argv += [f"{name}={path}" for name, path in modules.items()]
    argv += ["--max-lora-rank", str(rank), "--max-loras", str(len(modules)), "--port", str(port)]
    return {"base": base, "lora_modules": modules, "max_lora_rank": rank, "argv": argv, "shell": shlex.join(argv)}
