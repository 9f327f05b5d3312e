"""Requests the API tests share: the guide's start body, uploads, and the error envelope's check."""

from __future__ import annotations

from typing import Any

GUIDE_BODY = {
    "skill_path": "commit-messages/SKILL.md",
    "adapter_type": "lora",
    "num_epochs": 3,
    "learning_rate": 2e-4,
    "batch_size": 4,
}

SKILL = (
    "---\nname: tea-brewing\ndescription: Brews tea properly. Use when the user asks how to make tea or "
    "wants a brewing time.\n---\n\n# Tea brewing\n\nGood tea depends on water temperature and time more "
    "than on the leaves.\n\n## Steps\n\n1. Boil fresh water.\n2. Let it cool to 80 C for green tea.\n"
    "3. Steep for three minutes.\n\n## Rules\n\n- Never squeeze the bag.\n- Warm the pot first.\n\n"
    "See [the chart](references/chart.md).\n"
)


def start(client: Any, body: Any = None, **kw: Any) -> Any:
    return client.post("/api/training/start", json=GUIDE_BODY if body is None else body, **kw)


def upload(client: Any, url: str, filename: str, content: bytes, **fields: Any) -> Any:
    return client.post(url, files={"file": (filename, content)}, data={k: str(v) for k, v in fields.items()})


def assert_error(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error


def _arm(perplexity: float) -> dict[str, Any]:
    return {"perplexity": perplexity, "accuracy": None, "bleu": None, "chrf": None, "prompt_tokens_per_call": 28.0}


# An evaluation report as an older version stored it (no notes, arm titles, KL or expectations) with a key
# no model names.
STORED_REPORT: dict[str, Any] = {
    "source": "held_out",
    "num_examples": 1,
    "generation": {"do_sample": False, "max_new_tokens": 8},
    "skill_truncated": False,
    "arms": {"base": _arm(9.5), "base_with_skill": _arm(8.0), "adapter": _arm(8.5)},
    "internalisation": {"perplexity": {"ratio": 0.66, "reason": None}, "bleu": {"ratio": None, "reason": "no text"}},
    "prompt_tokens_saved_per_call": 900.0,
    "examples": [
        {
            "id": "held-out-1",
            "prompt": "How should a commit summary look?",
            "reference": "Imperative.",
            "outputs": {arm: {"output": "", "perplexity": 9.0, "chrf": None} for arm in ("base", "adapter")},
            "a_later_key": [1, 2],
        }
    ],
    "best": ["held-out-1"],
    "worst": ["held-out-1"],
    "something_new": {"kept": True},
}
