"""QLoRA through bitsandbytes on the CPU: 4-bit nf4 with double quantisation, and 8-bit."""

from __future__ import annotations

from pathlib import Path

import pytest

bnb = pytest.importorskip("bitsandbytes")

from skill_adapter import crud  # noqa: E402
from skill_adapter.assets import TINY_MODEL_DIR  # noqa: E402
from skill_adapter.core.config import Settings  # noqa: E402
from skill_adapter.core.db import session_scope  # noqa: E402
from skill_adapter.pipeline import execute_job  # noqa: E402
from skill_adapter.training.hardware import detect_hardware  # noqa: E402
from skill_adapter.training.model import attach_adapter, load_base_model  # noqa: E402
from tests.helpers.jobs import make_job  # noqa: E402

pytestmark = pytest.mark.slow


def qlora_config(bits: int) -> dict[str, object]:
    return {
        "model": str(TINY_MODEL_DIR), "adapter_type": "qlora", "quant_bits": bits,
        "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": "all-linear",
    }  # fmt: skip


@pytest.mark.parametrize(("bits", "layer"), [(4, "Linear4bit"), (8, "Linear8bitLt")])
def test_base_is_quantised_and_only_lora_trains(bits: int, layer: str) -> None:
    model = attach_adapter(load_base_model(qlora_config(bits), detect_hardware()), qlora_config(bits))
    quantised = [
        m for m in model.modules() if type(m).__name__ == layer and type(m).__module__.startswith("bitsandbytes")
    ]
    assert len(quantised) == 2 * 7, "every projection of both layers is quantised"
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    if bits == 4:
        weight = quantised[0].weight
        assert weight.quant_state.quant_type == "nf4"
        assert weight.quant_state.nested, "double quantisation"


@pytest.mark.parametrize("bits", [4, 8])
def test_qlora_job_succeeds_end_to_end(settings: Settings, skills_root: Path, bits: int) -> None:
    job_id = make_job(
        settings, skills_root, adapter_type="qlora", quant_bits=bits, num_epochs=1, batch_size=8,
        gradient_accumulation_steps=1, learning_rate=5e-3,
    )  # fmt: skip
    assert execute_job(job_id, settings=settings) == "succeeded"
    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
        logs = [line.message for line in crud.read_logs(session=session, job_id=job_id, after=0, limit=1000)]
    assert job.config["adapter_type"] == "qlora" and job.config["quant_bits"] == bits
    assert any(f"qlora, {bits}-bit" in message for message in logs)
    assert (Path(job.adapter_path) / "adapter_model.safetensors").is_file()
