"""What the hardware supports: device, precision, attention kernel, GPU figures."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Hardware:
    cuda: bool
    bf16: bool
    fp16: bool
    attn_implementation: str

    @property
    def dtype(self) -> torch.dtype:
        if self.bf16:
            return torch.bfloat16
        if self.fp16:
            return torch.float16
        return torch.float32

    @property
    def precision(self) -> str:
        return "bf16" if self.bf16 else "fp16" if self.fp16 else "fp32"


def detect_hardware() -> Hardware:
    """bf16 where the GPU supports it, else fp16 on CUDA, fp32 on the CPU; flash-attn only when usable."""
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    fp16 = cuda and not bf16
    flash = cuda and importlib.util.find_spec("flash_attn") is not None
    return Hardware(cuda=cuda, bf16=bf16, fp16=fp16, attn_implementation="flash_attention_2" if flash else "sdpa")


def gpu_figures() -> dict[str, float | None]:
    """GPU utilisation (%) and memory in use (MB) where a GPU exists; empty on the CPU."""
    if not torch.cuda.is_available():
        return {}
    figures: dict[str, float | None] = {"gpu_memory_mb": torch.cuda.memory_allocated() / 2**20}
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        figures["gpu_utilization"] = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        figures["gpu_memory_mb"] = pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
    except Exception:  # NVML missing or unsupported: memory from torch is still useful
        figures["gpu_utilization"] = None
    return figures
