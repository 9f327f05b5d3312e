"""The settings object: the guide's variables and defaults, .env files, and clear start-up errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from skill_adapter.assets import TINY_MODEL_DIR
from skill_adapter.core.config import ConfigError, Settings, load_settings
from tests.helpers.paths import REPO_ROOT

GUIDE_DEFAULTS = {
    "adapter": "lora",
    "quant_bits": 4,
    "learning_rate": 2e-4,
    "batch_size": 4,
    "gradient_accumulation_steps": 4,
    "num_epochs": 3,
    "max_seq_length": 2048,
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "save_steps": 100,
}


def test_guide_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKILL_ADAPTER_MODEL")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    for name, value in GUIDE_DEFAULTS.items():
        assert getattr(settings, name) == value, name
    assert settings.model is None
    assert settings.base_model().name == "smollm2-135m-instruct"
    assert settings.model_name_or_path == str(Path(".skill-adapter/models/smollm2-135m-instruct").resolve())
    assert Settings(_env_file=None, model="tiny").model_name_or_path == str(TINY_MODEL_DIR)  # type: ignore[call-arg]
    assert settings.data_dir == Path(".skill-adapter")
    assert settings.checkpoint_dir == Path("checkpoints")
    assert settings.skills_root == Path("skills")
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert settings.resolved_database_url.endswith(".skill-adapter/skill-adapter.db")
    assert settings.resolved_broker_url == "filesystem://"


def test_every_guide_variable_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "MODEL": "Qwen/Qwen3-8B",
        "ADAPTER": "qlora",
        "QUANT_BITS": "8",
        "LEARNING_RATE": "1e-4",
        "BATCH_SIZE": "2",
        "GRADIENT_ACCUMULATION_STEPS": "8",
        "NUM_EPOCHS": "5",
        "MAX_SEQ_LENGTH": "1024",
        "LORA_R": "32",
        "LORA_ALPHA": "64",
        "LORA_DROPOUT": "0.1",
        "SAVE_STEPS": "50",
        "LOGGING_STEPS": "5",
        "SEED": "7",
        "DATABASE_URL": "postgresql+psycopg://localhost/x",
        "BROKER_URL": "redis://localhost:6379/0",
    }
    for key, value in env.items():
        monkeypatch.setenv(f"SKILL_ADAPTER_{key}", value)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (s.model, s.adapter, s.quant_bits, s.learning_rate) == ("Qwen/Qwen3-8B", "qlora", 8, 1e-4)
    assert (s.batch_size, s.gradient_accumulation_steps, s.num_epochs, s.max_seq_length) == (2, 8, 5, 1024)
    assert (s.lora_r, s.lora_alpha, s.lora_dropout) == (32, 64, 0.1)
    assert (s.save_steps, s.logging_steps, s.seed) == (50, 5, 7)
    assert s.resolved_database_url == "postgresql+psycopg://localhost/x"
    assert not s.uses_embedded_broker


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKILL_ADAPTER_MODEL")
    env_file = tmp_path / ".env"
    env_file.write_text("SKILL_ADAPTER_NUM_EPOCHS=7\nSKILL_ADAPTER_MODEL=\n")
    s = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert s.num_epochs == 7
    assert s.model is None


def test_env_example_lists_every_setting() -> None:
    text = (REPO_ROOT / ".env.example").read_text()
    for name in Settings.model_fields:
        assert f"SKILL_ADAPTER_{name.upper()}=" in text, name
    assert "\nSKILL_ADAPTER_MODEL=smollm2-135m-instruct\n" in text  # the embedded default, not a hub model
    assert "\n# SKILL_ADAPTER_MODEL=Qwen/Qwen3-8B\n" in text


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("NUM_EPOCHS", "0"),
        ("ADAPTER", "full"),
        ("QUANT_BITS", "3"),
        ("LEARNING_RATE", "abc"),
        ("LORA_DROPOUT", "1"),
    ],
)
def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(f"SKILL_ADAPTER_{var}", value)
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None)
    assert f"SKILL_ADAPTER_{var}" in str(info.value)


def test_the_default_recipe_is_template_for_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKILL_ADAPTER_RECIPE")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.recipe, settings.distill_loss, settings.teacher_temperature) == ("template", "kl", 0.0)
    monkeypatch.setenv("SKILL_ADAPTER_RECIPE", "recite")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]
