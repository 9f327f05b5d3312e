"""The OpenAI-compatible /v1 end to end: `skill-adapter serve` (API + its model server process) on the tiny
model, two adapters trained to answer differently, and the official ``openai`` client as the client."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import openai
import pytest

from skill_adapter import crud
from skill_adapter.assets import TINY_MODEL_DIR
from skill_adapter.core.config import Settings
from skill_adapter.core.db import init_db, session_scope
from skill_adapter.models import utcnow
from skill_adapter.serving.protocol import ChatCompletion, ModelList
from tests.helpers.adapters import train_fixed_answer
from tests.helpers.processes import MODEL_SERVER_PATIENCE, free_port, running_serve, uvicorn_ready_line

pytestmark = pytest.mark.slow

SKILL = "---\nname: {name}\ndescription: Answers {word}, always, whatever the question.\n---\n\n# {name}\n\n{body}\n"


def _job(settings: Settings, job_id: str, skill: str, adapter: Path, skill_file: Path, age: int) -> None:
    with session_scope(settings) as session:
        job = crud.create_job(
            session=session, job_id=job_id, skill_path=str(skill_file), skill_name=skill, config={"num_epochs": 1}
        )
        job.status, job.adapter_path = "succeeded", str(adapter)
        job.created_at = utcnow() - timedelta(minutes=age)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    root = tmp_path_factory.mktemp("serving")
    settings = Settings(_env_file=None, model="tiny", data_dir=root / "data", checkpoint_dir=root / "ck")  # type: ignore[call-arg]
    init_db(settings)
    alpha = train_fixed_answer(str(TINY_MODEL_DIR), root / "ck" / "train-alpha" / "final", "alpha alpha alpha")
    bravo = train_fixed_answer(str(TINY_MODEL_DIR), root / "ck" / "train-bravo" / "final", "bravo bravo bravo", seed=1)
    other = root / "ck" / "train-other" / "final"  # an adapter of another base model
    shutil.copytree(alpha, other)
    config = json.loads((other / "adapter_config.json").read_text())
    (other / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "acme/other-7b"}))
    for name, word, adapter, age in (("alpha-skill", "alpha", alpha, 3), ("bravo-skill", "bravo", bravo, 2)):
        skill_file = root / name / "SKILL.md"
        skill_file.parent.mkdir()
        skill_file.write_text(SKILL.format(name=name, word=word, body=f"Always answer {word}. " * 40))
        _job(settings, f"train-{word}", name, adapter, skill_file, age)
    _job(settings, "train-other", "other-skill", other, root / "alpha-skill" / "SKILL.md", 1)
    pickled = root / "ck" / "train-pickled" / "final"  # weights only as a pickle: never loaded
    pickled.mkdir(parents=True)
    shutil.copy(alpha / "adapter_config.json", pickled)
    (pickled / "adapter_model.bin").write_bytes(b"not loaded")
    _job(settings, "train-pickled", "pickled-skill", pickled, root / "alpha-skill" / "SKILL.md", 4)

    api_port, model_port = free_port(), free_port()
    env = {
        **os.environ,
        "SKILL_ADAPTER_MODEL": "tiny",
        "SKILL_ADAPTER_DATA_DIR": str(root / "data"),
        "SKILL_ADAPTER_CHECKPOINT_DIR": str(root / "ck"),
        "SKILL_ADAPTER_MAX_LOADED_ADAPTERS": "1",  # every switch between adapters evicts and reloads
        "SKILL_ADAPTER_SERVING_QUEUE_SIZE": "4",
        "SKILL_ADAPTER_SWEEP_INTERVAL_SECONDS": "600",
    }
    extra = ("--no-worker", "--model-server-port", str(model_port))
    with running_serve(*extra, env=env, cwd=root, port=api_port) as (api, serve):
        # `serve` starts its model server lazy (the base model loads on the first request needing it), in a
        # process of its own that prints its own uvicorn line.
        serve.wait_for_line(uvicorn_ready_line(model_port), MODEL_SERVER_PATIENCE, what="the model server")
        models = f"http://127.0.0.1:{model_port}"
        assert httpx.get(f"{models}/health", timeout=10).json()["status"] == "idle"
        assert httpx.get(f"{api}/v1/models", timeout=10).status_code == 200
        client = openai.OpenAI(base_url=f"{api}/v1", api_key="unused", max_retries=0, timeout=120)
        yield {"client": client, "api": api, "models": models}


def _ask(client: openai.OpenAI, model: str, prompt: str = "hello", **kwargs: object) -> str:
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=8, **kwargs
    )
    return answer.choices[0].message.content or ""


def _idle(models: str) -> None:
    deadline = time.monotonic() + 60
    while (health := httpx.get(f"{models}/health").json())["in_flight"] or health["generating"]:
        assert time.monotonic() < deadline, f"requests still in flight: {health}"
        time.sleep(0.2)


def test_models_lists_base_and_adapters(service: dict[str, object]) -> None:
    client: openai.OpenAI = service["client"]  # type: ignore[assignment]
    listed = {m.id: m.model_dump() for m in client.models.list()}
    assert {"tiny", "train-alpha", "train-bravo", "train-other"} <= set(listed)
    assert listed["train-alpha"]["parent"] == "tiny" and listed["train-alpha"]["skill"] == "alpha-skill"
    assert listed["train-other"]["parent"] == "acme/other-7b" and listed["train-other"]["servable"] is False


def test_answers_match_the_declared_schemas(service: dict[str, object]) -> None:
    """The dashboard's types are generated from what the API's /v1 declares (serving/protocol.py)."""
    api = service["api"]
    listed = httpx.get(f"{api}/v1/models", timeout=10).json()
    assert ModelList.model_validate(listed).model_dump(exclude_unset=True) == listed
    request = {"model": "train-alpha", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    answer = httpx.post(f"{api}/v1/chat/completions", json={**request, "temperature": 0}, timeout=120).json()
    assert ChatCompletion.model_validate(answer).model_dump(exclude_unset=True) == answer


def test_each_adapter_answers_under_interleaved_concurrent_requests(service: dict[str, object]) -> None:
    client: openai.OpenAI = service["client"]  # type: ignore[assignment]
    models = ["train-alpha", "bravo-skill", "alpha-skill", "train-bravo"] * 2  # job ids and skill names
    with ThreadPoolExecutor(4) as pool:  # 4 in flight: the queue's size, so none is refused
        answers = list(pool.map(lambda m: _ask(client, m, "Some question it never saw?"), models))
    for model, answer in zip(models, answers, strict=True):
        mine, theirs = ("alp", "brav") if "alpha" in model else ("brav", "alp")
        assert mine in answer and theirs not in answer, (model, answer)
    base = _ask(client, "tiny")
    assert "alp" not in base and "brav" not in base
    loaded = [m.id for m in client.models.list() if m.model_dump().get("loaded") and m.id != "tiny"]
    assert len(loaded) == 1  # the cache holds one adapter once no request decodes with the others


def test_stream_matches_and_carries_logprobs(service: dict[str, object]) -> None:
    client: openai.OpenAI = service["client"]  # type: ignore[assignment]
    whole = client.chat.completions.create(
        model="train-bravo", messages=[{"role": "user", "content": "ping"}], temperature=0, max_tokens=6,
        logprobs=True, top_logprobs=3,
    )  # fmt: skip
    stream = client.chat.completions.create(
        model="train-bravo", messages=[{"role": "user", "content": "ping"}], temperature=0, max_tokens=6,
        logprobs=True, top_logprobs=3, stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content and "brav" in text
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content or []]
    content = whole.choices[0].logprobs.content  # type: ignore[union-attr]
    assert len(content) == len(streamed) == whole.usage.completion_tokens == chunks[-1].usage.completion_tokens  # type: ignore[union-attr]
    for entry in content:  # greedy: the chosen token is the most likely one, and logprobs are log-probabilities
        assert len(entry.top_logprobs) == 3 and entry.top_logprobs[0].token == entry.token
        assert entry.logprob <= 0 and entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)
    assert whole.choices[0].finish_reason == "length"


def test_skill_arm_pays_for_the_skill_tokens(service: dict[str, object]) -> None:
    client: openai.OpenAI = service["client"]  # type: ignore[assignment]
    messages = [{"role": "user", "content": "hello"}]
    plain = client.chat.completions.create(model="tiny", messages=messages, max_tokens=2, temperature=0)  # type: ignore[arg-type]
    skilled = client.chat.completions.create(
        model="tiny",
        messages=messages,
        max_tokens=2,
        temperature=0,
        extra_body={"with_skill": "alpha-skill"},  # type: ignore[arg-type]
    )
    assert skilled.usage.prompt_tokens > plain.usage.prompt_tokens + 100  # type: ignore[union-attr]


def test_bad_requests_get_openai_errors(service: dict[str, object]) -> None:
    client: openai.OpenAI = service["client"]  # type: ignore[assignment]
    with pytest.raises(openai.NotFoundError) as missing:
        _ask(client, "no-such-adapter")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.ConflictError) as mismatch:
        _ask(client, "train-other")
    assert mismatch.value.code == "adapter_base_mismatch"
    with pytest.raises(openai.UnprocessableEntityError) as pickled:
        _ask(client, "pickled-skill", stream=True)
    assert pickled.value.code == "adapter_not_safetensors"
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=10**6)
    assert too_long.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny", messages=[{"role": "robot", "content": "hi"}])  # type: ignore[list-item,misc]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny", messages=[])


def test_admin_load_and_unload(service: dict[str, object]) -> None:
    api, client = service["api"], service["client"]
    loaded = httpx.post(f"{api}/v1/load_lora_adapter", json={"lora_name": "alpha-skill"})
    assert loaded.status_code == 200, loaded.text
    state = {m.id: m.model_dump()["loaded"] for m in client.models.list()}  # type: ignore[attr-defined]
    assert state["train-alpha"] is True
    assert httpx.post(f"{api}/v1/unload_lora_adapter", json={"lora_name": "train-alpha"}).status_code == 200
    state = {m.id: m.model_dump()["loaded"] for m in client.models.list()}  # type: ignore[attr-defined]
    assert state["train-alpha"] is False
    again = httpx.post(f"{api}/v1/unload_lora_adapter", json={"lora_name": "train-alpha"})
    assert again.status_code == 404 and again.json()["error"]["code"] == "adapter_not_loaded"
    outside = httpx.post(f"{api}/v1/load_lora_adapter", json={"lora_name": "train-alpha", "lora_path": "/etc"})
    assert outside.status_code == 400


def test_disconnect_stops_generation_and_a_flood_gets_429(service: dict[str, object]) -> None:
    api, models = str(service["api"]), str(service["models"])
    body = {"model": "train-alpha", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3000, "stream": True}
    with httpx.stream("POST", f"{api}/v1/chat/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        for _ in range(3):
            next(lines)
    _idle(models)  # the client went away: the 3000-token generation stopped and released its slot

    slow = {**body, "stream": False, "max_tokens": 400}
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: httpx.post(f"{api}/v1/chat/completions", json=slow, timeout=120), range(12)))
    codes = [a.status_code for a in answers]
    assert set(codes) == {200, 429} and codes.count(200) >= 1, codes
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.headers["retry-after"] and refused.json()["error"]["code"] == "too_many_requests"
    _idle(models)
    assert "alp" in _ask(service["client"], "train-alpha")  # type: ignore[arg-type]
