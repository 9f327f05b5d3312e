"""Evaluation of a real tiny-model adapter through the worker path, checked against an independent recomputation."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sacrebleu
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from skill_adapter import crud, queued
from skill_adapter.assets import TINY_MODEL_DIR
from skill_adapter.core.config import Settings
from skill_adapter.core.db import init_db, session_scope
from skill_adapter.evaluation.jobs import create_evaluation, execute_evaluation
from skill_adapter.pipeline import execute_job
from skill_adapter.queued import EVALUATION
from skill_adapter.schemas import TrainingParams
from skill_adapter.service import create_training_job
from tests.helpers.paths import EXAMPLE_SKILLS

pytestmark = pytest.mark.slow
MAX_NEW_TOKENS = 12


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    """One job trained hard enough on the tiny model that its held-out perplexity moves."""
    tmp = tmp_path_factory.mktemp("evaluation")
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("SKILL_ADAPTER_"):
                mp.delenv(name)
        mp.setenv("CUDA_VISIBLE_DEVICES", "")
        mp.setenv("HF_HUB_OFFLINE", "1")
        shutil.copytree(EXAMPLE_SKILLS, tmp / "skills")
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            model="tiny",
            data_dir=tmp / "data",
            checkpoint_dir=tmp / "checkpoints",
            skills_root=tmp / "skills",
            save_steps=1000,
            recipe="template",  # the held-out references these tests check are the template builder's
        )
        init_db(settings)
        with session_scope(settings) as session:
            job = create_training_job(
                session=session,
                skill_file=tmp / "skills" / "commit-messages" / "SKILL.md",
                params=TrainingParams.model_validate(
                    {"num_epochs": 4, "batch_size": 8, "gradient_accumulation_steps": 1, "learning_rate": 1e-2}
                ),
                settings=settings,
            )
            job_id = job.id
        assert execute_job(job_id, settings=settings) == "succeeded"
        yield settings, job_id


def run_evaluation(settings: Settings, job_id: str, **params: Any) -> dict[str, Any]:
    with session_scope(settings) as session:
        evaluation_id = create_evaluation(
            session=session, job_id=job_id, params={"max_new_tokens": MAX_NEW_TOKENS, **params}, settings=settings
        ).id
    assert execute_evaluation(evaluation_id, settings=settings) == "succeeded"
    assert execute_evaluation(evaluation_id, settings=settings) == "skipped"  # redelivery is a no-op
    with session_scope(settings) as session:
        evaluation = crud.get_evaluation(session=session, evaluation_id=evaluation_id)
        assert evaluation.progress == 1.0 and evaluation.report_path
        assert Path(evaluation.report_path).read_text(encoding="utf-8").startswith(f"# Evaluation {evaluation_id}")
        return dict(evaluation.report or {})


def reference_nll(model: Any, tokenizer: Any, messages: list[dict[str, str]], reference: str) -> tuple[float, int]:
    """Summed NLL of the reference answer (plus end of turn) with transformers' own shifted loss."""
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    target = [*tokenizer(reference, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    ids = torch.tensor([prompt_ids + target])
    labels = torch.tensor([[-100] * len(prompt_ids) + target])
    with torch.no_grad():
        loss = model(input_ids=ids, labels=labels).loss
    return float(loss) * len(target), len(target)


def greedy(model: Any, tokenizer: Any, messages: list[dict[str, str]]) -> str:
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, eos_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


def test_held_out_report_and_an_independent_recomputation(trained: tuple[Settings, str]) -> None:
    settings, job_id = trained
    report = run_evaluation(settings, job_id)
    arms = report["arms"]
    assert set(arms) == {"base", "base_with_skill", "adapter"}
    assert report["source"] == "held_out" and report["num_examples"] == len(report["examples"]) > 0
    assert report["generation"] == {
        "do_sample": False,
        "num_beams": 1,
        "max_new_tokens": MAX_NEW_TOKENS,
        "batch_size": 8,
    }
    assert report["skill_truncated"] is False

    # The point of it all: after training, the adapter predicts held-out answers better than the base.
    assert arms["adapter"]["perplexity"] < 0.9 * arms["base"]["perplexity"], arms
    assert arms["base_with_skill"]["prompt_tokens_per_call"] > arms["adapter"]["prompt_tokens_per_call"]
    assert report["prompt_tokens_saved_per_call"] == pytest.approx(
        arms["base_with_skill"]["prompt_tokens_per_call"] - arms["adapter"]["prompt_tokens_per_call"]
    )
    assert set(report["best"]) | set(report["worst"]) <= {e["id"] for e in report["examples"]}
    ratio = report["internalisation"]["perplexity"]
    denominator = arms["base_with_skill"]["perplexity"] - arms["base"]["perplexity"]
    if abs(denominator) >= 0.01 * arms["base"]["perplexity"]:
        expected = (arms["adapter"]["perplexity"] - arms["base"]["perplexity"]) / denominator
        assert ratio == {"ratio": pytest.approx(expected), "reason": None}
    else:  # the SKILL.md barely moves the random tiny model's perplexity: the ratio is left out, in words
        assert ratio["ratio"] is None and "too small an effect" in ratio["reason"]
    # The report names its arms in words and says why its figures mean little on the tiny model.
    assert report["arm_titles"] == {"base": "base", "base_with_skill": "base + SKILL.md", "adapter": "adapter"}
    assert any("embedded tiny test model" in note for note in report["notes"])

    # Recompute with nothing of ours: transformers' loss, a fresh PeftModel, sacrebleu directly.
    with session_scope(settings) as session:
        job = crud.get_job(session=session, job_id=job_id)
        skill_text = Path(job.skill_path).read_text(encoding="utf-8-sig")
        adapter_path = job.adapter_path
    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL_DIR)
    base = AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR).eval()
    example = report["examples"][0]
    user = [{"role": "user", "content": example["prompt"]}]
    with_skill = [{"role": "system", "content": skill_text}, *user]

    nll, count = reference_nll(base, tokenizer, user, example["reference"])
    assert example["outputs"]["base"]["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-4)
    nll, count = reference_nll(base, tokenizer, with_skill, example["reference"])
    assert example["outputs"]["base_with_skill"]["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-4)
    assert example["outputs"]["base"]["output"] == greedy(base, tokenizer, user)

    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR), adapter_path).eval()
    nll, count = reference_nll(adapted, tokenizer, user, example["reference"])
    assert example["outputs"]["adapter"]["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-4)
    output = greedy(adapted, tokenizer, user)
    assert example["outputs"]["adapter"]["output"] == output
    chrf = sacrebleu.sentence_chrf(output, [example["reference"]]).score
    assert example["outputs"]["adapter"]["chrf"] == pytest.approx(chrf)

    # The corpus figures follow from the per-example ones.
    outputs = [e["outputs"]["adapter"]["output"] for e in report["examples"]]
    references = [e["reference"] for e in report["examples"]]
    assert arms["adapter"]["bleu"] == pytest.approx(sacrebleu.corpus_bleu(outputs, [references]).score)
    assert arms["adapter"]["chrf"] == pytest.approx(sacrebleu.corpus_chrf(outputs, [references]).score)
    exact = [e["outputs"]["adapter"]["exact"] for e in report["examples"]]
    assert arms["adapter"]["accuracy"] == pytest.approx(sum(exact) / len(exact))
    counts = [len(tokenizer(r, add_special_tokens=False)["input_ids"]) + 1 for r in references]
    ppls = [e["outputs"]["adapter"]["perplexity"] for e in report["examples"]]
    nlls = [math.log(ppl) * n for ppl, n in zip(ppls, counts, strict=True)]
    assert arms["adapter"]["perplexity"] == pytest.approx(math.exp(sum(nlls) / sum(counts)), rel=1e-6)

    saved = settings.checkpoint_dir.resolve() / job_id
    assert json.loads((saved / "evaluations" / report["evaluation_id"] / "report.json").read_text()) == report
    assert (saved / "evaluation.md").read_text(encoding="utf-8").startswith(f"# Evaluation {report['evaluation_id']}")
    card = (saved / "final" / "README.md").read_text(encoding="utf-8")  # the model card carries the summary
    assert "Not evaluated yet" not in card and "| adapter |" in card and "prompt tokens/call" in card


def test_evals_json_cases_and_a_skill_that_does_not_fit(trained: tuple[Settings, str]) -> None:
    settings, job_id = trained
    evals = {
        "skill_name": "commit-messages",
        "evals": [
            {"id": "describe", "prompt": "Write a commit for a typo fix.", "expected_output": "A fix(docs) commit."},
            {"id": "exact", "prompt": "Which type adds a feature?", "expected_output": "feat", "exact": True},
        ],
    }
    report = run_evaluation(settings, job_id, evals=evals, max_context_tokens=96)
    assert report["source"] == "evals" and [e["id"] for e in report["examples"]] == ["describe", "exact"]
    described, exact = report["examples"]
    for arm in ("base", "base_with_skill", "adapter"):
        assert report["arms"][arm]["scored_cases"] == 1  # accuracy, BLEU and chrF on the exact case only
        assert report["arms"][arm]["accuracy"] in (0.0, 1.0)
        assert described["outputs"][arm]["chrf"] is None and described["outputs"][arm]["exact"] is None
        assert described["outputs"][arm]["perplexity"] > 0  # perplexity of expected_output for every case
        assert exact["outputs"][arm]["exact"] is not None
    # 96 tokens of context cannot hold the whole SKILL.md beside a prompt: it is cut, and the report says so.
    skill = report["skill"]
    assert report["skill_truncated"] is True and skill["tokens_used"] < skill["tokens"]
    assert report["context_tokens"] == 96
    assert max(e["outputs"]["base_with_skill"]["prompt_tokens"] for e in report["examples"]) + MAX_NEW_TOKENS <= 96
    with session_scope(settings) as session:
        path = crud.list_evaluations(session=session, job_id=job_id)[0].report_path
    assert "SKILL.md was truncated" in Path(path or "").read_text(encoding="utf-8")


def test_cli_evaluate_prints_the_markdown_report(trained: tuple[Settings, str]) -> None:
    settings, job_id = trained
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SKILL_ADAPTER_")},
        "SKILL_ADAPTER_MODEL": "tiny",
        "SKILL_ADAPTER_DATA_DIR": str(settings.data_dir),
        "SKILL_ADAPTER_CHECKPOINT_DIR": str(settings.checkpoint_dir),
        "SKILL_ADAPTER_SKILLS_ROOT": str(settings.skills_root),
        "CUDA_VISIBLE_DEVICES": "",
        "HF_HUB_OFFLINE": "1",
    }
    cmd = [sys.executable, "-m", "skill_adapter.cli", "evaluate", job_id, "--limit", "2", "--max-new-tokens", "4"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("# Evaluation eval-") and f"of {job_id}" in out.stdout
    assert "| perplexity (lower is better) |" in out.stdout and "cases: 2 from held_out" in out.stdout

    shown = subprocess.run([*cmd[:5], "--show", "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert shown.returncode == 0 and json.loads(shown.stdout)["num_examples"] == 2

    missing = subprocess.run([*cmd[:4], "train-000000000000"], capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 2 and "job_not_found" in missing.stderr


def test_a_running_evaluation_is_cancelled_and_its_process_stopped(trained: tuple[Settings, str]) -> None:
    """Issue 15: evaluations can be cancelled like jobs; the worker sees it at its next heartbeat."""
    import threading
    import time

    settings, job_id = trained
    quick = settings.model_copy(update={"job_lease_seconds": 2.0})  # heartbeats every 0.5 s
    with session_scope(quick) as session:
        evaluation_id = create_evaluation(
            session=session, job_id=job_id, params={"max_new_tokens": 256}, settings=quick
        ).id
    outcome: list[str] = []
    runner = threading.Thread(target=lambda: outcome.append(execute_evaluation(evaluation_id, settings=quick)))
    runner.start()
    deadline = time.monotonic() + 60
    while True:
        with session_scope(quick) as session:
            if crud.get_evaluation(session=session, evaluation_id=evaluation_id).status == "running":
                queued.request_cancel(
                    session=session,
                    kind=EVALUATION,
                    work=crud.get_evaluation(session=session, evaluation_id=evaluation_id),
                )
                break
        assert time.monotonic() < deadline, "the evaluation was never claimed"
        time.sleep(0.05)
    runner.join(timeout=60)
    assert not runner.is_alive() and outcome == ["cancelled"]
    with session_scope(quick) as session:
        evaluation = crud.get_evaluation(session=session, evaluation_id=evaluation_id)
        assert evaluation.status == "cancelled" and evaluation.report is None
