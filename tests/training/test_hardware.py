"""Hardware decisions and GPU figures, with CUDA and NVML faked (units: this machine has no GPU)."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
import torch

from skill_adapter.training import hardware
from skill_adapter.training.hardware import Hardware, detect_hardware, gpu_figures
from skill_adapter.training.model import quantization_config


def fake_cuda(monkeypatch: pytest.MonkeyPatch, *, bf16: bool, flash: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    real_find_spec = hardware.importlib.util.find_spec
    monkeypatch.setattr(
        hardware.importlib.util,
        "find_spec",
        lambda name, *a: (object() if flash else None) if name == "flash_attn" else real_find_spec(name, *a),
    )


def test_cpu_trains_in_fp32_with_sdpa() -> None:
    found = detect_hardware()  # this machine (and CI): no CUDA
    assert found == Hardware(cuda=False, bf16=False, fp16=False, attn_implementation="sdpa")
    assert found.dtype == torch.float32 and found.precision == "fp32"


@pytest.mark.parametrize(
    ("bf16", "flash", "precision", "dtype", "attention"),
    [
        (True, True, "bf16", torch.bfloat16, "flash_attention_2"),
        (True, False, "bf16", torch.bfloat16, "sdpa"),
        (False, True, "fp16", torch.float16, "flash_attention_2"),
        (False, False, "fp16", torch.float16, "sdpa"),
    ],
)
def test_gpu_precision_and_attention_follow_the_hardware(
    monkeypatch: pytest.MonkeyPatch, bf16: bool, flash: bool, precision: str, dtype: torch.dtype, attention: str
) -> None:
    fake_cuda(monkeypatch, bf16=bf16, flash=flash)
    found = detect_hardware()
    assert found.cuda and found.precision == precision and found.dtype == dtype
    assert found.attn_implementation == attention


def test_qlora_4bit_is_nf4_double_quant_with_bf16_compute_where_supported() -> None:
    config = {"adapter_type": "qlora", "quant_bits": 4}
    gpu = quantization_config(config, Hardware(cuda=True, bf16=True, fp16=False, attn_implementation="sdpa"))
    assert gpu.load_in_4bit and gpu.bnb_4bit_quant_type == "nf4" and gpu.bnb_4bit_use_double_quant
    assert gpu.bnb_4bit_compute_dtype == torch.bfloat16
    cpu = quantization_config(config, detect_hardware())
    assert cpu.bnb_4bit_compute_dtype == torch.float32
    eight = quantization_config({"adapter_type": "qlora", "quant_bits": 8}, detect_hardware())
    assert eight.load_in_8bit and not eight.load_in_4bit
    assert quantization_config({"adapter_type": "lora", "quant_bits": 4}, detect_hardware()) is None


def fake_nvml(monkeypatch: pytest.MonkeyPatch, *, fail: bool = False) -> None:
    def init() -> None:
        if fail:
            raise RuntimeError("NVML Shared Library Not Found")

    module: Any = types.ModuleType("pynvml")
    module.nvmlInit = init
    module.nvmlDeviceGetHandleByIndex = lambda index: f"gpu{index}"
    module.nvmlDeviceGetUtilizationRates = lambda handle: types.SimpleNamespace(gpu=87)
    module.nvmlDeviceGetMemoryInfo = lambda handle: types.SimpleNamespace(used=3 * 2**30)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *a: 2**30)


def test_gpu_figures_from_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml(monkeypatch)
    assert gpu_figures() == {"gpu_memory_mb": 3072.0, "gpu_utilization": 87.0}


def test_gpu_memory_from_torch_when_nvml_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml(monkeypatch, fail=True)
    assert gpu_figures() == {"gpu_memory_mb": 1024.0, "gpu_utilization": None}


def test_no_gpu_figures_on_the_cpu() -> None:
    assert gpu_figures() == {}


def test_gpu_figures_reach_the_metric_series(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """A logging step on a GPU writes utilisation and memory beside the loss, into the database."""
    from transformers import TrainerControl, TrainerState

    from skill_adapter import crud
    from skill_adapter.core.db import init_db, session_scope
    from skill_adapter.reporting import JobReporter
    from skill_adapter.training.callbacks import ProgressCallback

    init_db(settings)
    with session_scope(settings) as session:
        crud.create_job(
            session=session,
            job_id="train-0000000000aa",
            skill_path="x",
            skill_name="x",
            config={"num_epochs": 1},
        )
    fake_nvml(monkeypatch)
    callback = ProgressCallback(JobReporter(settings, "train-0000000000aa"), num_epochs=1)
    state = TrainerState()
    state.global_step, state.max_steps = 3, 10
    callback.on_log(None, state, TrainerControl(), logs={"loss": 1.5, "learning_rate": 1e-4, "epoch": 0.3})  # type: ignore[arg-type]
    with session_scope(settings) as session:
        [point] = crud.read_metrics(session=session, job_id="train-0000000000aa", after=0, limit=10)
    assert (point.loss, point.learning_rate) == (1.5, 1e-4)
    assert (point.gpu_utilization, point.gpu_memory_mb) == (87.0, 3072.0)
