"""What this machine can train with: torch, CUDA, GPUs, bitsandbytes, flash-attn and the attention kernel.

For ``skill-adapter doctor``, which runs in its own short-lived process: it may initialise CUDA.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
from typing import Any


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe_machine() -> dict[str, Any]:
    """Versions, devices and the kernels a job on this machine would use (``torch: None`` where it is absent)."""
    try:
        import torch

        from skill_adapter.training.hardware import detect_hardware
    except ImportError:  # an API-only install (the API image leaves torch out)
        return {
            "python": platform.python_version(),
            "torch": None,
            "torch_cuda": None,
            "cuda_available": False,
            "gpus": [],
            "precision": None,
            "attn_implementation": None,
            "flash_attn": None,
            "bitsandbytes": None,
            "transformers": _version("transformers"),
            "peft": _version("peft"),
            "trl": _version("trl"),
        }

    hardware = detect_hardware()
    gpus = []
    if hardware.cuda:
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            gpus.append(
                {
                    "index": index,
                    "name": torch.cuda.get_device_name(index),
                    "capability": ".".join(map(str, torch.cuda.get_device_capability(index))),
                    "free_mb": round(free / 2**20, 1),
                    "total_mb": round(total / 2**20, 1),
                }
            )
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": hardware.cuda,
        "gpus": gpus,
        "precision": hardware.precision,
        "attn_implementation": hardware.attn_implementation,
        "flash_attn": _version("flash-attn") if importlib.util.find_spec("flash_attn") else None,
        "bitsandbytes": _version("bitsandbytes") if importlib.util.find_spec("bitsandbytes") else None,
        "transformers": _version("transformers"),
        "peft": _version("peft"),
        "trl": _version("trl"),
    }


def machine_advice(machine: dict[str, Any]) -> list[str]:
    """Why a job here would run slowly or not at all, one line per reason."""
    if machine["torch"] is None:
        return ["torch is not installed: this machine can run the API but not train (workers need it)"]
    advice = []
    if not machine["cuda_available"]:
        advice.append(
            "no CUDA GPU: jobs train on the CPU in fp32 (fine for the embedded tiny model, too slow for an 8B model)"
        )
    elif machine["flash_attn"] is None:
        advice.append("flash-attn is not installed: attention uses PyTorch sdpa (install the `gpu` extra for speed)")
    if machine["bitsandbytes"] is None:
        advice.append("bitsandbytes is not installed: qlora jobs fail (install the `qlora` extra)")
    elif not machine["cuda_available"]:
        advice.append("qlora on the CPU works with bitsandbytes but is slow")
    if machine["cuda_available"] and machine["precision"] != "bf16":
        advice.append(f"the GPU has no bf16: training runs in {machine['precision']}")
    return advice
