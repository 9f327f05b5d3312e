"""``skill-adapter doctor``: the service's health plus this machine's devices and libraries."""

from __future__ import annotations

import json

import pytest

from skill_adapter.cli import main as cli_main
from skill_adapter.core.config import Settings
from skill_adapter.core.db import init_db
from skill_adapter.doctor import doctor_report, format_doctor


def use(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKILL_ADAPTER_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SKILL_ADAPTER_CHECKPOINT_DIR", str(settings.checkpoint_dir))
    monkeypatch.setenv("SKILL_ADAPTER_SKILLS_ROOT", str(settings.skills_root))


def test_doctor_json_on_a_healthy_cpu_machine(settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    use(settings, monkeypatch)
    init_db(settings)
    assert cli_main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["health"]["status"] == "ok" and report["health"]["database"]["status"] == "ok"
    machine = report["machine"]
    assert machine["cuda_available"] is False and machine["gpus"] == []  # CUDA_VISIBLE_DEVICES="" in tests
    assert machine["attn_implementation"] == "sdpa" and machine["precision"] == "fp32"
    assert machine["torch"] and machine["bitsandbytes"]  # bitsandbytes is a dev dependency
    model = report["model"]
    assert (model["name"], model["builtin"], model["ready"], model["available_offline"]) == ("tiny", "tiny", True, True)
    assert any("jobs train the embedded toy test model" in line for line in report["advice"])
    assert any("no CUDA GPU" in line for line in report["advice"])
    assert any("no live worker" in line for line in report["advice"])


def test_doctor_text_and_exit_code_when_the_broker_is_down(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    use(settings, monkeypatch)
    monkeypatch.setenv("SKILL_ADAPTER_BROKER_URL", "redis://127.0.0.1:1/0")
    init_db(settings)
    assert cli_main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "service: unavailable" in out and "broker    error" in out
    assert "attention sdpa" in out and "CUDA      no" in out and "bitsandbytes" in out and "flash-attn" in out


def test_missing_model_is_advised(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    init_db(settings)
    monkeypatch.setenv("HF_HOME", str(settings.data_dir / "hf"))  # an empty cache
    report = doctor_report(settings.model_copy(update={"model": "Qwen/Qwen3-8B"}))
    assert report["model"]["available_offline"] is False and report["model"]["hf_hub_offline"] is True
    assert any("Qwen/Qwen3-8B is not on this machine" in line and "jobs will fail" in line for line in report["advice"])
    assert "not on this machine" in format_doctor(report)


def test_doctor_on_an_api_only_install_without_torch(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    init_db(settings)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    report = doctor_report(settings)
    assert report["machine"]["torch"] is None and report["machine"]["cuda_available"] is False
    assert any("torch is not installed" in line for line in report["advice"])
    assert "torch not installed" in format_doctor(report)
