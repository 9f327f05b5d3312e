"""The engine under concurrency: requests for different adapters interleave token by token while a cache of
one adapter evicts and reloads, and admin loads and unloads land in between; every answer must equal the one
the same request gets alone, and nothing may fail (this raced before: an eviction outside inference mode
left PEFT's adapters out of step with the engine's list, and every later request failed)."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from skill_adapter.assets import TINY_MODEL_DIR
from skill_adapter.serving.engine import Engine, Generation
from tests.helpers.adapters import train_fixed_answer

pytestmark = pytest.mark.slow  # its fixture trains two adapters


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str] | None]:
    root = tmp_path_factory.mktemp("engine")
    alpha = train_fixed_answer(str(TINY_MODEL_DIR), root / "alpha", "alpha alpha")
    bravo = train_fixed_answer(str(TINY_MODEL_DIR), root / "bravo", "bravo bravo", seed=1)
    return [("alpha", str(alpha)), ("bravo", str(bravo)), None]


@pytest.mark.parametrize("cache_size", [1, 2])
def test_interleaved_requests_and_admin_calls_answer_as_alone(
    adapters: list[tuple[str, str] | None], cache_size: int
) -> None:
    engine = Engine(str(TINY_MODEL_DIR), max_adapters=cache_size)
    prompt = engine.encode([{"role": "user", "content": "hello"}])

    def answer(adapter: tuple[str, str] | None, tokens: int) -> str:
        parts: list[str] = []
        engine.generate(Generation(prompt, adapter, max_tokens=tokens, temperature=0), lambda s: parts.append(s.text))
        return "".join(parts)

    alone = {(a and a[0], n): answer(a, n) for a in adapters for n in (2, 5)}
    assert len({alone[("alpha", 5)], alone[("bravo", 5)], alone[(None, 5)]}) == 3  # three different answers

    rng = random.Random(cache_size)
    plan = [(rng.choice(adapters), rng.choice((2, 5)), rng.random()) for _ in range(80)]

    def run(item: tuple[tuple[str, str] | None, int, float]) -> tuple[str | None, int, str] | None:
        adapter, tokens, roll = item
        if roll < 0.1 and adapter is not None:  # an admin call between requests
            engine.load(*adapter) if roll < 0.05 else engine.unload(adapter[0])
            return None
        return adapter and adapter[0], tokens, answer(adapter, tokens)

    with ThreadPoolExecutor(4) as pool:
        results = [r for r in pool.map(run, plan) if r is not None]
    wrong = [(name, tokens, text) for name, tokens, text in results if text != alone[(name, tokens)]]
    assert not wrong, f"answers changed under concurrency: {wrong[:5]}"
    assert len(engine.loaded_names()) <= cache_size  # evicted back to its size once the requests ended
