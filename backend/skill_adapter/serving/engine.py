"""The model server's engine: one base model in memory and many LoRA adapters on it (PEFT multi-adapter).

Adapters load on first use into a bounded cache (least recently used out). PEFT's active adapter is state
of the one shared model, so every forward pass runs alone, under a first-come-first-served lock, with its
request's adapter made active (or every adapter disabled, for the base) inside the lock: requests for
different adapters never share a pass, and each answers from its own adapter. The lock is taken per step
(the prompt's pass, then one token), so concurrent requests take turns token by token: a new request's
first token waits for one step of each request ahead of it, not for their whole answers. Each request
keeps its own KV cache. Decoding is a plain loop, so every step can report log-probabilities, check stop
strings and notice a cancelled request (a client that went away) before spending more compute.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from peft import PeftModel

from skill_adapter.evaluation.adapters import check_adapter_folder
from skill_adapter.serving.protocol import ServingError
from skill_adapter.serving.text import first_stop, held_back
from skill_adapter.training.convert import ensure_model
from skill_adapter.training.hardware import detect_hardware
from skill_adapter.training.model import load_base_model, load_tokenizer

log = logging.getLogger(__name__)

TEMPLATE_KWARGS = {"enable_thinking": False}  # as in training and evaluation


@dataclass
class Step:
    """One generated token: the text it adds (maybe empty: held back or a partial character) and its logprobs."""

    text: str
    logprob: dict[str, Any] | None = None
    counts: bool = True  # False for the final flush of held-back text, which is no new token


@dataclass
class Generation:
    """What a request asks the engine to do."""

    prompt_ids: list[int]
    adapter: tuple[str, str] | None  # (name, folder) or None for the base model
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    top_logprobs: int | None = None  # None: no logprobs; 0..20: the chosen token's, plus that many alternatives
    stops: list[str] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)


class FairLock:
    """A lock granted in the order it was asked for (``threading.Lock`` promises no order)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._cond.wait()

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


class AdapterLoadError(RuntimeError):
    """An adapter that would not load onto the base model (its cause says why)."""


class Engine:
    """The base model, its tokenizer, and the adapters loaded on it."""

    def __init__(
        self, base_path: str, *, builtin: str | None = None, max_adapters: int = 8, trust_remote_code: bool = False
    ) -> None:
        ensure_model(base_path, builtin)
        hardware = detect_hardware()
        self.device = torch.device("cuda" if hardware.cuda else "cpu")
        self.tokenizer = load_tokenizer(base_path, trust_remote_code=trust_remote_code)
        config = {"model": base_path, "adapter_type": "lora", "quant_bits": 4}
        base = load_base_model(config, hardware, trust_remote_code=trust_remote_code, for_training=False)
        self.base = base.to(self.device).eval()  # type: ignore[arg-type]
        self.model: Any = self.base  # becomes the PeftModel once an adapter is loaded
        self.loaded: OrderedDict[str, str] = OrderedDict()  # adapter name -> folder, least recently used first
        self.max_adapters = max_adapters
        self.lock = FairLock()  # one forward pass (or adapter load) at a time, first come first served
        self.context = int(getattr(self.base.config, "max_position_embeddings", 0) or 4096)
        eos = {self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids(self.tokenizer.eos_token)}
        generation_eos = getattr(getattr(self.base, "generation_config", None), "eos_token_id", None)
        eos.update(generation_eos if isinstance(generation_eos, list) else [generation_eos])
        self.stop_ids = {int(i) for i in eos if isinstance(i, int)}
        self.active_requests = 0
        self._counter = threading.Lock()
        self.pinned: dict[str, int] = {}  # adapter -> requests decoding with it (never evicted under them)

    # Prompts ------------------------------------------------------------------------------------------
    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **TEMPLATE_KWARGS
        )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # Adapters -----------------------------------------------------------------------------------------
    def loaded_names(self) -> list[str]:
        return list(self.loaded)

    def load(self, name: str, path: str) -> bool:
        """Load an adapter (if it is not loaded yet); True when it was loaded now."""
        with self.lock, torch.inference_mode():  # as when a request loads it: one kind of tensor throughout
            return self._load(name, path)

    def _load(self, name: str, path: str) -> bool:
        if name in self.loaded:
            self.loaded.move_to_end(name)
            return False
        from pathlib import Path

        check_adapter_folder(Path(path))  # safetensors only
        self._evict(room_for=1)
        started = time.perf_counter()
        if isinstance(self.model, PeftModel):
            self.model.load_adapter(path, adapter_name=name, is_trainable=False)
        else:
            self.model = PeftModel.from_pretrained(self.base, path, adapter_name=name, is_trainable=False).eval()
        self.loaded[name] = path
        log.info("loaded adapter %s from %s in %.2f s", name, path, time.perf_counter() - started)
        return True

    def _evict(self, room_for: int = 0) -> None:
        """Unload least recently used adapters until ``room_for`` more fit, sparing the ones requests are
        decoding with (the cache then stays over its size until they finish, rather than reloading an
        adapter at every token when more adapters are in use at once than it holds)."""
        while len(self.loaded) + room_for > self.max_adapters:
            with self._counter:
                idle = [name for name in self.loaded if not self.pinned.get(name)]
            if not idle:
                return
            self._unload(idle[0])

    def unload(self, name: str) -> bool:
        with self.lock, torch.inference_mode():
            return self._unload(name)

    def _unload(self, name: str) -> bool:
        if name not in self.loaded:
            return False
        if len(self.loaded) == 1:  # the last one: take the LoRA layers out, back to the plain base
            self.base = self.model.unload()
            self.model = self.base
        else:
            if self.model.active_adapter == name:
                self.model.set_adapter(next(n for n in self.loaded if n != name), inference_mode=True)
            self.model.delete_adapter(name)
        del self.loaded[name]
        log.info("unloaded adapter %s", name)
        return True

    @contextlib.contextmanager
    def _active(self, adapter: tuple[str, str] | None) -> Iterator[Any]:
        """The model with ``adapter`` active (or every adapter disabled); the caller holds the lock."""
        if adapter is None:
            if isinstance(self.model, PeftModel):
                with self.model.disable_adapter():
                    yield self.model
            else:
                yield self.model
            return
        try:
            self._load(*adapter)
        except Exception as exc:
            raise AdapterLoadError(str(exc)) from exc
        if self.model.active_adapter != adapter[0]:
            # inference_mode: served adapters never need gradients (and weights loaded under
            # torch.inference_mode cannot be set to require them outside it)
            self.model.set_adapter(adapter[0], inference_mode=True)
        yield self.model

    # Generation ---------------------------------------------------------------------------------------
    def generate(self, request: Generation, emit: Callable[[Step], None]) -> str:
        """Decode ``request`` token by token, calling ``emit`` per token; returns the finish reason
        (``stop``, ``length`` or ``cancelled``)."""
        if request.cancel.is_set():
            return "cancelled"
        name = request.adapter[0] if request.adapter is not None else None
        with self._counter:
            self.active_requests += 1
            if name is not None:
                self.pinned[name] = self.pinned.get(name, 0) + 1
        try:
            with torch.inference_mode():
                return self._decode(request, emit)
        finally:
            with self._counter:
                self.active_requests -= 1
                if name is not None:
                    self.pinned[name] -= 1
                    if not self.pinned[name]:
                        del self.pinned[name]
            if name is not None and len(self.loaded) > self.max_adapters:
                with self.lock, torch.inference_mode():
                    self._evict()

    def _forward(self, adapter: tuple[str, str] | None, **inputs: Any) -> Any:
        """One forward pass with ``adapter`` active, in this request's turn."""
        with self.lock, self._active(adapter) as model:
            return model(use_cache=True, **inputs)

    def _decode(self, request: Generation, emit: Callable[[Step], None]) -> str:
        generator = None
        if request.seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(request.seed)
        ids = torch.tensor([request.prompt_ids], device=self.device)
        out = self._forward(request.adapter, input_ids=ids)
        # transformers 5.2x names the KV cache ``cache`` (``past_key_values`` before, now deprecated).
        cache_name = "cache" if "cache" in out else "past_key_values"
        past, logits = out[cache_name], out.logits[0, -1]
        generated: list[int] = []
        sent = ""
        for _ in range(request.max_tokens):
            if request.cancel.is_set():
                return "cancelled"
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            token = self._choose(logits, request, generator)
            if token in self.stop_ids:
                self._flush(generated, sent, emit)  # text held back for a stop string that never came
                return "stop"
            generated.append(token)
            entry = self._logprob_entry(token, logprobs, request.top_logprobs)
            text = self.tokenizer.decode(generated, skip_special_tokens=True)
            stop_at = first_stop(text, request.stops)
            if stop_at is not None:
                emit(Step(text[len(sent) : stop_at] if stop_at > len(sent) else "", entry))
                return "stop"
            ready = len(text) - held_back(text, request.stops)
            if text.endswith("\ufffd"):  # a character split across tokens: wait for the rest
                ready = min(ready, len(text) - 1)
            delta = text[len(sent) : ready] if ready > len(sent) else ""
            sent += delta
            emit(Step(delta, entry))
            step = torch.tensor([[token]], device=self.device)
            out = self._forward(request.adapter, input_ids=step, **{cache_name: past})
            past, logits = out[cache_name], out.logits[0, -1]
        self._flush(generated, sent, emit)
        return "length"

    def _flush(self, generated: list[int], sent: str, emit: Callable[[Step], None]) -> None:
        text = self.tokenizer.decode(generated, skip_special_tokens=True)
        if len(text) > len(sent):
            emit(Step(text[len(sent) :], None, counts=False))

    @staticmethod
    def _choose(logits: torch.Tensor, request: Generation, generator: torch.Generator | None) -> int:
        if request.temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits.float() / request.temperature, dim=-1)
        if request.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < request.top_p
            sorted_probs = sorted_probs * keep
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        return int(torch.multinomial(probs / probs.sum(), 1, generator=generator))

    def _logprob_entry(self, token: int, logprobs: torch.Tensor, top: int | None) -> dict[str, Any] | None:
        if top is None:
            return None
        entry = self._token_logprob(token, float(logprobs[token]))
        alternatives = []
        if top > 0:
            values, indices = torch.topk(logprobs, top)
            alternatives = [self._token_logprob(int(i), float(v)) for v, i in zip(values, indices, strict=True)]
        return {**entry, "top_logprobs": alternatives}

    def _token_logprob(self, token: int, logprob: float) -> dict[str, Any]:
        text = self.tokenizer.decode([token])
        return {"token": text, "logprob": max(logprob, -9999.0), "bytes": list(text.encode("utf-8"))}


def engine_error(exc: Exception) -> ServingError:
    """A load failure as a clear 4xx: an adapter folder that is missing or not safetensors, or mismatched."""
    from skill_adapter.core.errors import SkillAdapterError

    if isinstance(exc, SkillAdapterError):
        return ServingError(422, exc.code, exc.message, param="model")
    return ServingError(
        422,
        "adapter_load_failed",
        f"The adapter could not be loaded on this base model: {type(exc).__name__}: {exc}",
        param="model",
    )
