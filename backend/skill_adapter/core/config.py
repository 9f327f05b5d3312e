"""The one configuration object: every ``SKILL_ADAPTER_*`` variable, from the environment and ``.env``."""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, create_model, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from skill_adapter.core.base_models import (
    BUILTIN_MODELS,
    DEFAULT_MODEL,
    ModelNameError,
    ResolvedModel,
    builtin_names,
    check_model_name,
    folder_problem,
    resolve_model,
)
from skill_adapter.core.params import settings_fields

if TYPE_CHECKING:  # to type checkers each parameter's setting is Any

    class _ParamSettings(BaseSettings):
        def __getattr__(self, name: str) -> Any: ...

else:
    # One field per training parameter that has a variable, declared in core/params.py.
    _ParamSettings = create_model("_ParamSettings", __base__=BaseSettings, **settings_fields())


class Settings(_ParamSettings):
    """Service configuration. Relative paths are relative to the working directory."""

    model_config = SettingsConfigDict(
        env_prefix="SKILL_ADAPTER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
        allow_inf_nan=False,  # the same finite ranges as a request's (schemas.py)
    )

    # Model configuration (the guide's variables)
    model: str | None = Field(
        default=None,
        description=f"Base model: a built-in name ({', '.join(builtin_names())}), a local folder, or a hub id "
        f"such as Qwen/Qwen3-8B. Unset: {DEFAULT_MODEL}.",
    )
    models_dir: Path | None = Field(
        default=None,
        description="Where built-in GGUF models are converted to (once); default DATA_DIR/models",
    )

    # The training parameters' variables (SKILL_ADAPTER_ADAPTER, _LEARNING_RATE, _LORA_R, ...: the guide's, and
    # the rest) come from core/params.py, with the request's defaults, ranges and help: see _ParamSettings.

    # Evaluation
    eval_max_new_tokens: int = Field(
        default=128, ge=1, le=4096, description="Post-training evaluation: new tokens per greedy generation"
    )

    # Where things live
    data_dir: Path = Field(default=Path(".skill-adapter"), description="SQLite file and embedded broker folders")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default sqlite in DATA_DIR")
    broker_url: str | None = Field(default=None, description="Celery broker; default filesystem:// in DATA_DIR")
    checkpoint_dir: Path = Field(default=Path("checkpoints"))
    skills_root: Path = Field(default=Path("skills"), description="The only folder skill_path may point into")

    # Checkpoints
    keep_checkpoints: int = Field(
        default=3, ge=1, le=1000, description="Intermediate checkpoints kept per job (the newest N, plus final)"
    )

    # Queue housekeeping
    requeue_after_seconds: float = Field(
        default=120, gt=0, description="Re-enqueue a job still queued this long after its last enqueue"
    )
    sweep_interval_seconds: float = Field(default=15, gt=0)
    job_lease_seconds: float = Field(
        default=60, gt=0, description="A running job without a heartbeat this long is taken back"
    )
    max_attempts: int = Field(default=3, ge=1, description="Attempts before a job whose worker keeps dying fails")
    broker_visibility_timeout: float = Field(
        default=3600,
        gt=0,
        description="Redis broker: an unacknowledged message is delivered again after this many seconds "
        "(harmless: claims are a compare-and-set, so nothing runs twice)",
    )
    client_timeout_seconds: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="serve: close a connection whose request headers or body stall this long (slow clients)",
    )
    trust_remote_code: bool = False

    # Serving (the model server behind /v1)
    model_server_url: str | None = Field(
        default=None,
        description="Where the API's /v1 reaches the model server; unset: `serve` starts one on 127.0.0.1",
    )
    max_loaded_adapters: int = Field(
        default=8, ge=1, le=1024, description="Adapters the model server keeps loaded (least recently used out)"
    )
    serving_queue_size: int = Field(
        default=32, ge=1, le=100_000, description="Chat requests in flight (running or waiting) before 429"
    )
    serving_max_tokens: int = Field(
        default=512, ge=1, le=1_000_000, description="New tokens per chat answer when max_tokens is not given"
    )

    # Webhooks (docs/events.md): signed POSTs of terminal states (and, opt-in, checkpoints) from the workers
    webhook_urls: str = Field(
        default="", description="Receivers (comma-separated http(s) URLs) told about every job, besides its own"
    )
    webhook_secret: str | None = Field(
        default=None, description="Standard Webhooks signing secret, whsec_<base64>; unset: deliveries are unsigned"
    )
    webhook_allow_private: bool = Field(
        default=False, description="Allow receivers on loopback, private, link-local and metadata addresses"
    )
    webhook_timeout_seconds: float = Field(default=10, gt=0, le=300, description="Per delivery attempt")
    webhook_max_attempts: int = Field(default=12, ge=1, le=100, description="Attempts before a delivery is given up")
    webhook_retry_seconds: float = Field(
        default=5, gt=0, description="First retry delay; it doubles per attempt, at most one hour"
    )

    @field_validator("webhook_urls", "cors_origins", mode="before")
    @classmethod
    def _blank_list_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value  # `SKILL_ADAPTER_CORS_ORIGINS=` in a copied .env.example: none

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _secret_form(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        from skill_adapter.webhooks import secret_key

        secret_key(str(value))  # raises ValueError with the expected form
        return str(value).strip()

    @field_validator("webhook_urls")
    @classmethod
    def _urls_http(cls, value: str) -> str:
        urls = [url.strip() for url in value.split(",") if url.strip()]
        for url in urls:
            if not re.match(r"^https?://[^/\s]+", url, re.IGNORECASE):
                raise ValueError(f"{url!r} is not an http(s) URL; list receivers separated by commas")
        return ",".join(urls)

    @property
    def webhook_url_list(self) -> list[str]:
        return [url for url in self.webhook_urls.split(",") if url]

    # Who may do what (docs/security.md)
    max_active_jobs_per_key: int = Field(
        default=20, ge=1, description="Queued + running jobs and evaluations one key may have; past it 429"
    )
    submissions_per_minute: int = Field(
        default=30, ge=1, description="Jobs and evaluations one key may submit in any 60 s; past it 429"
    )
    fair_scheduling: bool = Field(
        default=True,
        description="Workers take queued work in turns across keys (fewest running first), not in arrival "
        "order: one key's burst cannot keep another key's job waiting behind it",
    )
    max_queue_depth: int = Field(
        default=500, ge=1, description="Queued jobs and evaluations on the whole server; past it 503"
    )
    allowed_hosts: str = Field(
        default="localhost,127.0.0.1,::1",
        description="Host header values the API answers (comma-separated; * for any): DNS rebinding fails",
    )
    cors_origins: str = Field(
        default="", description="Origins (https://host:port, comma-separated) a browser page may call from"
    )
    keys_cache_seconds: float = Field(
        default=5, ge=0, description="How long the API keeps its copy of the key table (a revoke takes this long)"
    )

    @field_validator("model", "models_dir", mode="before")
    @classmethod
    def _blank_model_is_default(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("model")
    @classmethod
    def _model_loadable(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            value = check_model_name(value)
        except ModelNameError as exc:
            raise ValueError(str(exc)) from None
        folder = Path(value).expanduser()
        if folder.is_dir() and (problem := folder_problem(folder)) is not None:
            raise ValueError(problem)
        return value

    @field_validator("gradient_checkpointing", "eval_steps", "model_server_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("target_modules")
    @classmethod
    def _target_modules_listed(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        if not names or any(not re.fullmatch(r"[A-Za-z0-9_.\-]+", name) for name in names):
            raise ValueError("must be all-linear or module names separated by commas, such as q_proj,v_proj")
        return ",".join(names)

    @field_validator("quant_bits", mode="before")
    @classmethod
    def _quant_bits_from_text(cls, value: Any) -> Any:
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    @property
    def allowed_host_names(self) -> frozenset[str]:
        return frozenset(name.strip().lower().strip("[]") for name in self.allowed_hosts.split(",") if name.strip())

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip().rstrip("/") for origin in self.cors_origins.split(",") if origin.strip()]

    # Derived values -------------------------------------------------------------------------------
    @property
    def model_name_or_path(self) -> str:
        """The one entry point for "which base model": the string every part hands to ``from_pretrained``.

        Built-in names resolve here (``smollm2-135m-instruct`` when ``SKILL_ADAPTER_MODEL`` is unset):
        ``tiny`` to the embedded folder, ``smollm2-135m-instruct`` to ``<models_dir>/smollm2-135m-instruct``,
        an absolute folder that exists only once its GGUF has been converted. A local folder resolves to
        its absolute path, a hub id to itself. The value is stable (it does not change when the model is
        converted), so it is what job configs and ``adapter_config.json``'s ``base_model_name_or_path``
        record, and a user loads that folder again with ``AutoModelForCausalLM.from_pretrained``.

        Resolving never imports torch and never converts: code that loads the model (a training or
        evaluation process) first calls ``skill_adapter.training.convert.ensure_model`` with
        :meth:`base_model`'s ``builtin`` name, which converts under a file lock if needed.
        """
        return self.base_model().path

    def base_model(self) -> ResolvedModel:
        """The configured base model resolved on this machine: kind, path, size, whether it is ready."""
        return resolve_model(self.model, self.resolved_models_dir)

    @property
    def resolved_models_dir(self) -> Path:
        """Where built-in GGUF models are converted to: ``SKILL_ADAPTER_MODELS_DIR`` or ``DATA_DIR/models``."""
        return _resolved(str((self.models_dir or self.data_dir / "models").expanduser()))

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{_resolved(str(self.data_dir / 'skill-adapter.db'))}"

    @property
    def broker_folder(self) -> Path:
        return (self.data_dir / "broker").resolve()

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def uses_embedded_broker(self) -> bool:
        return self.resolved_broker_url.startswith("filesystem://")

    def prepare_dirs(self) -> None:
        """Create the folders the service writes to."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        if self.uses_embedded_broker:
            for sub in ("queue", "processed", "control"):
                (self.broker_folder / sub).mkdir(parents=True, exist_ok=True)

    def model_max_length(self) -> int | None:
        """The base model's context length, read from its config.json without importing transformers."""
        resolved = self.base_model()
        config_path = _local_model_config(resolved.path, hub=resolved.kind == "hub")
        if config_path is None:
            builtin = BUILTIN_MODELS.get(resolved.builtin or "")
            return builtin.context_length if builtin is not None else None
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        value = config.get("max_position_embeddings")
        return int(value) if isinstance(value, int) else None


def _local_model_config(name_or_path: str, *, hub: bool) -> Path | None:
    folder = Path(name_or_path)
    if (folder / "config.json").is_file():
        return folder / "config.json"
    if not hub:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    cached = try_to_load_from_cache(name_or_path, "config.json")
    return Path(cached) if isinstance(cached, str) else None


def _resolved(path: str) -> Path:
    """``Path(path).resolve()``, remembered per absolute path: the service's own folders are resolved on every
    request (the database URL, the models folder), and each resolve is a system call per path component,
    each of which gives up Python's GIL and waits to get it back behind the busy request threads."""
    return _resolve_absolute(os.path.abspath(path))


@lru_cache(maxsize=256)
def _resolve_absolute(path: str) -> Path:
    return Path(path).resolve()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, validated once."""
    return load_settings()


class ConfigError(SystemExit):
    """Start-up refused: the message names each invalid ``SKILL_ADAPTER_*`` variable."""


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning a validation error into a message that names the variables."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            value = err.get("input")
            shown = value if isinstance(value, (str, int, float)) else "?"
            lines.append(f"  SKILL_ADAPTER_{field.upper()}={shown!s}: {err['msg']}")
        raise ConfigError("Invalid configuration:\n" + "\n".join(lines)) from None
