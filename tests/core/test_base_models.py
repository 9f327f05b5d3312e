"""SKILL_ADAPTER_MODEL resolution: built-in names, folders, hub ids, bad values (no torch, no conversion)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from skill_adapter.assets import TINY_MODEL_DIR
from skill_adapter.core.base_models import READY_MARKER, resolve_model
from skill_adapter.core.config import ConfigError, Settings, load_settings


def settings_for(tmp_path: Path, model: str | None) -> Settings:
    return Settings(_env_file=None, model=model, data_dir=tmp_path / "data")  # type: ignore[call-arg]


def test_unset_means_the_real_built_in_model_converted_under_data_dir(tmp_path: Path) -> None:
    resolved = settings_for(tmp_path, None).base_model()
    assert (resolved.name, resolved.kind, resolved.builtin) == (
        "smollm2-135m-instruct",
        "builtin",
        "smollm2-135m-instruct",
    )
    assert resolved.path == str((tmp_path / "data" / "models" / "smollm2-135m-instruct").resolve())
    assert (resolved.ready, resolved.converts_on_first_use) == (False, True)
    assert settings_for(tmp_path, "  ").base_model() == resolved  # blank is unset


def test_models_dir_setting_moves_the_converted_folder(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, model=None, data_dir=tmp_path / "data", models_dir=tmp_path / "shared")  # type: ignore[call-arg]
    assert settings.model_name_or_path == str((tmp_path / "shared" / "smollm2-135m-instruct").resolve())


def test_tiny_is_the_embedded_folder_and_always_ready(tmp_path: Path) -> None:
    resolved = settings_for(tmp_path, "tiny").base_model()
    assert resolved.path == str(TINY_MODEL_DIR) and resolved.ready and not resolved.converts_on_first_use
    assert resolved.size_bytes is not None and resolved.size_bytes < 2_000_000


def test_ready_only_with_marker_and_weights(tmp_path: Path) -> None:
    """A folder at the target path is loaded only when the conversion's marker (written last) is there."""
    folder = tmp_path / "models" / "smollm2-135m-instruct"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"x")
    assert not resolve_model(None, tmp_path / "models").ready  # weights without the marker: half-written
    (folder / READY_MARKER).write_text("{}")
    assert resolve_model(None, tmp_path / "models").ready
    (folder / "model.safetensors").unlink()
    assert not resolve_model(None, tmp_path / "models").ready  # marker without weights: damaged


def test_local_folder_and_hub_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"0" * 10)
    local = settings_for(tmp_path, str(folder)).base_model()
    assert (local.kind, local.path, local.ready, local.size_bytes) == ("folder", str(folder.resolve()), True, 12)
    hub = settings_for(tmp_path, "Qwen/Qwen3-8B").base_model()
    assert (hub.kind, hub.path, hub.ready) == ("hub", "Qwen/Qwen3-8B", False)
    assert hub.problem and "downloaded on first use" in hub.problem
    elsewhere = settings_for(tmp_path, "/models/Qwen3-8B").base_model()  # only mounted on a worker, maybe
    assert elsewhere.kind == "folder" and not elsewhere.ready and "a worker may have it" in str(elsewhere.problem)


def test_unknown_built_in_name_stops_start_up_listing_the_valid_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKILL_ADAPTER_MODEL", "smollm2")
    with pytest.raises(ConfigError) as err:
        load_settings(_env_file=None)
    message = str(err.value)
    assert "SKILL_ADAPTER_MODEL=smollm2" in message and "not a built-in model name" in message
    assert "smollm2-135m-instruct, tiny" in message and "Qwen/Qwen3-8B" in message


def test_folder_without_weights_stops_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("SKILL_ADAPTER_MODEL", str(empty))
    with pytest.raises(ConfigError, match=r"has no config\.json"):
        load_settings(_env_file=None)
    (empty / "config.json").write_text("{}")
    (empty / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ConfigError, match=r"no \*\.safetensors weights"):
        load_settings(_env_file=None)


def test_unknown_name_in_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from skill_adapter.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SKILL_ADAPTER_MODEL", "llama-tiny")
    assert main(["train", str(Path(__file__).resolve().parents[2] / "skills" / "commit-messages")]) == 2
    text = capsys.readouterr().err
    assert "llama-tiny" in text and "smollm2-135m-instruct, tiny" in text


def test_resolution_imports_no_torch() -> None:
    import subprocess

    code = (
        "import sys\nfrom skill_adapter.core.config import Settings\n"
        "s = Settings(_env_file=None)\ns.base_model(); s.model_max_length()\nprint('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_adapters_name_a_base_inside_the_checkout_relative_to_it(tmp_path: Path) -> None:
    from skill_adapter.core.base_models import portable_model_path, same_model

    checkout = tmp_path / "clone"
    folder = checkout / ".skill-adapter" / "models" / "smollm2-135m-instruct"
    folder.mkdir(parents=True)
    recorded = portable_model_path(str(folder), cwd=checkout)
    assert recorded == ".skill-adapter/models/smollm2-135m-instruct"
    assert same_model(recorded, str(folder), cwd=checkout)
    # The checkout moves: the recorded name still finds the base from the new root.
    moved = tmp_path / "moved"
    checkout.rename(moved)
    assert (moved / recorded).is_dir()
    assert same_model(recorded, str(moved / recorded), cwd=moved)
    # Folders elsewhere and hub ids are kept as they are; different models never match.
    elsewhere = tmp_path / "models" / "mine"
    assert portable_model_path(str(elsewhere), cwd=moved) == str(elsewhere)
    assert portable_model_path("Qwen/Qwen3-8B", cwd=moved) == "Qwen/Qwen3-8B"
    assert not same_model("Qwen/Qwen3-8B", "Qwen/Qwen3-4B", cwd=moved)
    assert not same_model(recorded, str(elsewhere), cwd=moved)


def test_a_hub_name_without_owner_is_accepted_once_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    from skill_adapter.core.base_models import ModelNameError, check_model_name

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNameError, match="openai-community/gpt2"):
        check_model_name("gpt2")
    snapshot = tmp_path / "hub" / "models--gpt2" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--gpt2" / "refs").mkdir()
    (tmp_path / "hub" / "models--gpt2" / "refs" / "main").write_text("0" * 40)
    assert check_model_name("gpt2") == "gpt2"
