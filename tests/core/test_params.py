"""One declaration of the training parameters (core/params.py): every surface that names a parameter — the
request schema, the settings, ``/api/config``, the CLI flags and the dashboard's form — agrees with it."""

from __future__ import annotations

import argparse
import math
from typing import Any

import pytest

from skill_adapter.cli import build_parser
from skill_adapter.core.config import Settings
from skill_adapter.core.params import PARAMS, Param, param_specs
from skill_adapter.schemas import HYPERPARAMETERS, PARAM_RANGES, TrainingParams, TrainingStartRequest

REQUEST_FIELDS = list(TrainingParams.model_fields)


def _settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def _train_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def test_the_declaration_names_every_request_field_once() -> None:
    names = [param.name for param in PARAMS]
    assert len(names) == len(set(names))
    assert names == REQUEST_FIELDS
    assert set(TrainingStartRequest.model_fields) == {*names, "skill_path"}
    assert all(param.help and param.allowed and param.label for param in PARAMS)


def test_config_lists_every_request_field_with_its_default_and_range(client: Any) -> None:
    body = client.get("/api/config").json()
    assert set(body["defaults"]) == set(REQUEST_FIELDS)
    assert set(REQUEST_FIELDS) <= set(body["ranges"])
    for name in ("target_modules", "packing", "gradient_checkpointing", "eval_steps"):  # once left out
        assert name in body["defaults"], name
    assert body["defaults"]["target_modules"] == "all-linear"
    assert body["defaults"]["packing"] is False
    assert [spec["name"] for spec in body["parameters"]] == REQUEST_FIELDS


def test_config_defaults_are_the_configured_ones(client: Any) -> None:
    """What the dashboard starts from is what a job gets when the request leaves the field out."""
    defaults = client.get("/api/config").json()["defaults"]
    job = client.post("/api/training/start", json={"skill_path": "commit-messages/SKILL.md"}).json()
    config = client.get(f"/api/training/{job['job_id']}/status").json()["config"]
    for name in HYPERPARAMETERS:
        assert config[name] == defaults[name], name


def test_settings_defaults_equal_the_declared_defaults() -> None:
    settings = _settings()
    for param in PARAMS:
        if param.setting is None:
            continue
        value = param.from_setting(getattr(settings, param.setting))
        assert value == param.default, param.name
        field = Settings.model_fields[param.setting]
        assert field.description == param.help, param.name


def test_settings_keep_the_guide_variable_names() -> None:
    """training-guide.md's variables: SKILL_ADAPTER_ADAPTER is the request's adapter_type."""
    by_name = {param.name: param.setting for param in PARAMS}
    assert by_name["adapter_type"] == "adapter"
    for name in ("quant_bits", "learning_rate", "batch_size", "gradient_accumulation_steps", "num_epochs"):
        assert by_name[name] == name
    for name in ("max_seq_length", "lora_r", "lora_alpha", "lora_dropout"):
        assert by_name[name] == name


@pytest.mark.parametrize("param", [p for p in PARAMS if p.setting and p.bounds], ids=lambda p: p.name)
def test_settings_and_request_share_the_range(param: Param) -> None:
    """A value the request refuses is refused as a setting too, and the reverse, at each bound."""
    assert param.setting is not None
    for key, bound in param.bounds.items():
        outside = {"ge": bound - 1, "gt": bound, "le": bound + 1, "lt": bound}[key]
        inside = {"ge": bound, "gt": bound + 1e-6, "le": bound, "lt": bound - 1e-6}[key]
        if param.annotation is int:
            inside = math.ceil(inside) if key in ("ge", "gt") else math.floor(inside)
        with pytest.raises(ValueError):
            TrainingParams.model_validate({param.name: outside})
        with pytest.raises(ValueError):
            Settings(_env_file=None, **{param.setting: outside})  # type: ignore[call-arg]
        TrainingParams.model_validate({param.name: inside})
        Settings(_env_file=None, **{param.setting: inside})  # type: ignore[call-arg]


def test_every_parameter_has_a_cli_flag_that_defaults_to_the_configured_value() -> None:
    train = _train_parser()
    flags = {action.dest: action for action in train._actions}
    # Webhooks are delivered by a worker, and `train` runs none: those two are the API's only.
    assert [param.name for param in PARAMS if not param.cli] == ["webhook_url", "webhook_checkpoints"]
    for param in [param for param in PARAMS if param.cli]:
        action = flags.get(param.flag_dest)
        assert action is not None, f"no train flag for {param.name}"
        assert action.default is None, param.name  # unset: the configured default (SKILL_ADAPTER_*) applies
        assert repr_default(param) in (action.help or ""), param.name


def repr_default(param: Param) -> str:
    return "default: " + param.shown_default()


@pytest.mark.parametrize("param", [p for p in PARAMS if p.cli], ids=lambda p: p.name)
def test_a_cli_flag_gives_the_request_the_same_value(param: Param) -> None:
    """`train --flag VALUE` and a request with the declared default both validate to the same value."""
    from skill_adapter.cli import _train_params

    train = _train_parser()
    words = param.cli_words(param.default if param.default is not None else param.example)
    args = train.parse_args(["SKILL.md", *words])
    params = TrainingParams.model_validate(_train_params(args))
    expected = param.default if param.default is not None else param.example
    assert getattr(params, param.name) == expected


def test_ranges_in_words_come_from_the_declaration() -> None:
    for param in PARAMS:
        assert PARAM_RANGES[param.name] == param.allowed
    assert "skill_path" in PARAM_RANGES


def test_form_specs_carry_the_schema_bounds() -> None:
    specs = {spec["name"]: spec for spec in param_specs()}
    assert (
        specs["num_epochs"]["kind"] == "int" and specs["num_epochs"]["min"] == 1 and specs["num_epochs"]["max"] == 1000
    )
    assert specs["learning_rate"]["min_exclusive"] is True
    assert specs["lora_dropout"]["max_exclusive"] is True
    assert [c["value"] for c in specs["adapter_type"]["choices"]] == ["lora", "qlora"]
    assert specs["packing"]["kind"] == "tristate"
    schema = TrainingParams.model_json_schema()["properties"]
    for name, spec in specs.items():
        assert schema[name].get("description") == spec["help"], name


def test_docs_table_is_current() -> None:
    from pathlib import Path

    from skill_adapter.core.params import DOCS_END, DOCS_START, markdown_table

    text = (Path(__file__).resolve().parents[2] / "docs" / "parameters.md").read_text(encoding="utf-8")
    table = text.split(DOCS_START, 1)[1].split(DOCS_END, 1)[0].strip()
    assert table == markdown_table(), "regenerate: uv run python -m skill_adapter.core.params docs/parameters.md"
