"""What device a worker trains on, read without touching CUDA (NVML, else ``nvidia-smi``).

The worker's own process must never initialise CUDA (it would not survive a fork and would hold GPU memory),
so this module never imports torch. It honours ``CUDA_VISIBLE_DEVICES``: the first visible GPU is the one
a training process uses.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str
    free_mb: float
    total_mb: float


def _selected(gpus: list[Gpu], visible: str | None) -> list[Gpu]:
    """The GPUs that ``CUDA_VISIBLE_DEVICES`` exposes, in its order (indices or UUID prefixes)."""
    if visible is None:
        return gpus
    chosen: list[Gpu] = []
    for item in (part.strip() for part in visible.split(",")):
        if not item:
            break
        if item.lstrip("-").isdigit():
            if int(item) < 0:
                break  # CUDA stops at the first invalid entry
            match = [gpu for gpu in gpus if gpu.index == int(item)]
        else:
            match = [gpu for gpu in gpus if gpu.uuid.startswith(item)]
        if not match:
            break
        chosen.append(match[0])
    return chosen


def _from_nvml() -> list[Gpu] | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver
        return None
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                Gpu(
                    index=index,
                    uuid=uuid.decode() if isinstance(uuid, bytes) else str(uuid),
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    free_mb=round(memory.free / 2**20, 1),
                    total_mb=round(memory.total / 2**20, 1),
                )
            )
        return gpus
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):  # already shut down
            pynvml.nvmlShutdown()


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """Rows of ``nvidia-smi --query-gpu=index,uuid,name,memory.free,memory.total --format=csv,noheader,nounits``."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 5:
            continue
        try:
            gpus.append(Gpu(int(parts[0]), parts[1], parts[2], float(parts[3]), float(parts[4])))
        except ValueError:  # "[N/A]" on some boards
            continue
    return gpus


def _from_nvidia_smi() -> list[Gpu]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    query = "--query-gpu=index,uuid,name,memory.free,memory.total"
    try:
        out = subprocess.run(
            [exe, query, "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(out)


def visible_gpus() -> list[Gpu]:
    """The GPUs this process may use, first the one training will run on; empty on a CPU-only machine."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and not visible.strip():
        return []
    gpus = _from_nvml()
    if gpus is None:
        gpus = _from_nvidia_smi()
    return _selected(gpus, visible)


def package_version(name: str) -> str | None:
    """An installed distribution's version, without importing it (None when absent)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def worker_device() -> dict[str, Any]:
    """The device fields of a worker's heartbeat: cpu, or cuda with the first visible GPU's name and memory."""
    gpus = visible_gpus()
    details: dict[str, Any] = {
        "gpus": [asdict(gpu) for gpu in gpus],
        "torch": package_version("torch"),
        "flash_attn": package_version("flash-attn") if importlib.util.find_spec("flash_attn") else None,
        "bitsandbytes": package_version("bitsandbytes"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    if not gpus:
        return {"device": "cpu", "gpu_name": None, "gpu_free_mb": None, "gpu_total_mb": None, "details": details}
    first = gpus[0]
    return {
        "device": "cuda",
        "gpu_name": first.name,
        "gpu_free_mb": first.free_mb,
        "gpu_total_mb": first.total_mb,
        "details": details,
    }
