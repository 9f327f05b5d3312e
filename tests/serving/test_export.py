"""Export: the merged model loads with AutoModelForCausalLM and matches base + adapter; the model card; the
vLLM command; and the API's /v1 without a model server (torch-free, a clear 503)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from skill_adapter import crud
from skill_adapter.assets import TINY_MODEL_DIR
from skill_adapter.core.config import Settings
from skill_adapter.core.db import init_db, session_scope
from skill_adapter.serving.card import write_model_card
from skill_adapter.serving.vllm import adapters_for, vllm_command
from tests.helpers.adapters import train_fixed_answer


def _succeeded_job(settings: Settings, job_id: str, adapter: Path, skill_file: Path) -> None:
    init_db(settings)
    with session_scope(settings) as session:
        job = crud.create_job(
            session=session, job_id=job_id, skill_path=str(skill_file), skill_name="commit-messages",
            config={"num_epochs": 1, "lora_r": 8, "model": str(TINY_MODEL_DIR)},
        )  # fmt: skip
        job.status, job.adapter_path = "succeeded", str(adapter)


@pytest.mark.slow
def test_export_merged_matches_base_plus_adapter(settings: Settings, skills_root: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = train_fixed_answer(str(TINY_MODEL_DIR), tmp_path / "train-x" / "final", "alpha")
    skill_file = skills_root / "commit-messages" / "SKILL.md"
    _succeeded_job(settings, "train-x", adapter, skill_file)
    write_model_card(adapter, job_id="train-x", skill_name="commit-messages", skill_path=skill_file,
                     config={"lora_r": 8, "num_epochs": 1, "model": str(TINY_MODEL_DIR)})  # fmt: skip
    out = tmp_path / "merged"
    env = {"SKILL_ADAPTER_DATA_DIR": str(settings.data_dir), "SKILL_ADAPTER_CHECKPOINT_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "skill_adapter.cli", "export", "train-x", "--merged", str(out)],
        env={**__import__("os").environ, **env}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not list(out.glob("*.bin")) and "merge_and_unload" in (out / "README.md").read_text()

    ids = torch.tensor([[1, 5, 9, 40, 7, 3]])
    merged = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(TINY_MODEL_DIR)), str(adapter))
    base = AutoModelForCausalLM.from_pretrained(str(TINY_MODEL_DIR))
    with torch.no_grad():
        expected, got = with_adapter.eval()(input_ids=ids).logits, merged(input_ids=ids).logits
        plain = base.eval()(input_ids=ids).logits
    assert torch.allclose(got, expected, atol=1e-4)
    assert not torch.allclose(got, plain, atol=1e-3)  # the adapter is in there


def test_model_card_names_skill_base_settings_and_evaluation(skills_root: Path, tmp_path: Path) -> None:
    import hashlib

    adapter = tmp_path / "final"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/base-1b", "r": 8}))
    skill_file = skills_root / "commit-messages" / "SKILL.md"
    report = {"num_examples": 9, "source": "held_out", "prompt_tokens_saved_per_call": 812.0,
              "arms": {"adapter": {"perplexity": 3.25, "accuracy": 0.5, "prompt_tokens_per_call": 20.0}}}  # fmt: skip
    card = write_model_card(
        adapter, job_id="train-1", skill_name="commit-messages", skill_path=skill_file,
        config={"lora_r": 8, "learning_rate": 2e-4, "recipe": "distill"}, report=report,
    )  # fmt: skip
    assert card is not None
    text = card.read_text()
    assert hashlib.sha256(skill_file.read_bytes()).hexdigest() in text
    assert "org/base-1b" in text and "| lora_r | 8 |" in text and "distill" in text
    assert "| adapter | 3.25 | 0.5 |" in text and "812" in text and "PeftModel.from_pretrained" in text
    assert "Conventional Commits" in text or "commit" in text.split("Skill**:")[1].splitlines()[0]


def test_export_vllm_command(settings: Settings, skills_root: Path, tmp_path: Path) -> None:
    adapter = tmp_path / "ck" / "train-v" / "final"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(TINY_MODEL_DIR), "r": 24}))
    _succeeded_job(settings, "train-v", adapter, skills_root / "commit-messages" / "SKILL.md")
    command = vllm_command(adapters_for(["commit-messages"], settings=settings), port=9000)
    assert command["argv"][:4] == ["vllm", "serve", str(TINY_MODEL_DIR), "--enable-lora"]
    assert f"commit-messages={adapter.resolve()}" in command["argv"]
    assert command["max_lora_rank"] == 32 and "--port 9000" in command["shell"]
    from skill_adapter.core.errors import JobNotFoundError

    with pytest.raises(JobNotFoundError):
        adapters_for(["nope"], settings=settings)


def test_v1_without_model_server_is_a_clear_503(client: object) -> None:
    answer = client.post("/v1/chat/completions", json={"model": "tiny", "messages": []})  # type: ignore[attr-defined]
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] in {"model_server_not_configured", "model_server_unavailable"}


def test_api_with_v1_routes_imports_no_torch() -> None:
    code = "import sys; from skill_adapter.api.main import create_app; create_app; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
