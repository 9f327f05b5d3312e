"""Plain functions behind the routes and the CLI: resolve a skill, accept a job, enqueue it."""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from sqlalchemy.orm import Session

from skill_adapter import crud
from skill_adapter.admission import admit_and_insert
from skill_adapter.auth import Caller
from skill_adapter.core.base_models import same_model
from skill_adapter.core.budget import work_budget
from skill_adapter.core.config import Settings
from skill_adapter.core.errors import InvalidParameterError, PathOutsideRootError, SkillNotFoundError
from skill_adapter.core.params import configured_defaults
from skill_adapter.models import Job
from skill_adapter.schemas import HYPERPARAMETERS, PARAM_RANGES, TrainingParams

log = logging.getLogger(__name__)


def new_job_id() -> str:
    return f"train-{uuid.uuid4().hex[:12]}"


def shown_path(path: Path | str, *, root: Path) -> str:
    """``path`` as an answer names it: relative to ``root`` (prefixed with ``root`` itself when that is
    configured as a relative path), never as an absolute server path; a path outside ``root`` shows its name."""
    resolved_root = root.expanduser().resolve()
    try:
        relative = Path(path).resolve().relative_to(resolved_root)
    except ValueError:
        return Path(path).name
    if root.is_absolute():
        return relative.as_posix()
    return (root / relative).as_posix()


def resolve_skill_path(skill_path: str, *, skills_root: Path) -> Path:
    """The SKILL.md that ``skill_path`` names, confined to ``skills_root``.

    Relative paths are relative to the root. Symlinks are followed before the confinement check, so a
    link that leads out is refused like ``../``. A folder stands for the SKILL.md inside it.
    """
    root = skills_root.resolve()
    try:
        candidate = Path(skill_path)
        target = (candidate if candidate.is_absolute() else root / candidate).resolve()
    except (ValueError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidParameterError(f"skill_path is not a usable path: {reason}", field="skill_path") from None
    shown = skill_path[:300]  # messages name the client's own text and paths under the root, never the server's
    if not target.is_relative_to(root):
        raise PathOutsideRootError(
            f"skill_path {shown!r} resolves outside the skills root; "
            "put the skill under SKILL_ADAPTER_SKILLS_ROOT or upload it",
            skill_path=shown,
        )
    try:
        if target.is_dir() and (target / "SKILL.md").is_file():
            target = target / "SKILL.md"
        found = target.is_file()
    except OSError as exc:  # a name too long for the file system (ENAMETOOLONG), say
        raise InvalidParameterError(
            f"skill_path is not a usable path: {exc.strerror or type(exc).__name__}", field="skill_path"
        ) from None
    if not found:
        relative = target.relative_to(root).as_posix() or "."
        raise SkillNotFoundError(
            f"No SKILL.md at {shown!r} (looked for {relative!r} under the skills root); "
            "paths are relative to the skills root (GET /api/skills lists them)",
            skill_path=shown,
        )
    return target


def resolve_config(params: TrainingParams, *, settings: Settings) -> dict[str, Any]:
    """The job's full configuration: request values over the configured defaults."""
    given = params.model_dump(exclude_none=True)
    defaults = configured_defaults(settings)
    config = {name: given.get(name, defaults[name]) for name in HYPERPARAMETERS}
    base_model = settings.base_model()
    config["model"] = base_model.path  # settings.model_name_or_path: what from_pretrained loads
    config["base_model"] = base_model.name  # as configured: a built-in name is converted on first use

    model_max = settings.model_max_length()
    if model_max is not None and config["max_seq_length"] > model_max:
        raise InvalidParameterError(
            f"max_seq_length must be {PARAM_RANGES['max_seq_length']} ({model_max} for this model); "
            f"got {config['max_seq_length']}",
            field="max_seq_length",
        )
    check_target_modules(config["target_modules"], model=config["model"])
    if config["adapter_type"] == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
        raise InvalidParameterError(
            "adapter_type 'qlora' needs bitsandbytes, which is not installed on this server; "
            "install the 'qlora' extra or use 'lora'",
            field="adapter_type",
        )
    return config


def check_target_modules(targets: str | list[str], *, model: str) -> None:
    """Refuse module names the base model lacks (422), when its weights' headers are readable here."""
    from skill_adapter.core.base_models import hub_cached_folder
    from skill_adapter.core.model_modules import lora_module_names, unknown_target_modules, unknown_targets_message

    if targets == "all-linear" or isinstance(targets, str):
        return
    modules = lora_module_names(model)
    if modules is None and not Path(model).expanduser().is_dir():  # a hub id: its download, if there is one
        try:
            cached = hub_cached_folder(model)
        except ValueError:  # not a valid hub id either (huggingface_hub's HFValidationError)
            cached = None
        modules = lora_module_names(cached) if cached is not None else None
    if modules is None:
        # A hub model not downloaded yet, a built-in not converted yet: the API does not download at submission
        # (nor import torch), so the worker checks once it has loaded the model (training.model.check_targets):
        # the job then fails before training with the same code and message.
        return
    unknown = unknown_target_modules(list(targets), modules)
    if unknown:
        raise InvalidParameterError(unknown_targets_message(unknown, modules), field="target_modules")


def create_training_job(
    *,
    session: Session,
    skill_file: Path,
    params: TrainingParams,
    settings: Settings,
    job_id: str | None = None,
    idempotency_key: str | None = None,
    caller: Caller | None = None,
    after_commit: Callable[[Job], object] | None = None,
) -> Job:
    """Validate the skill and the parameters, and insert a queued job (not yet committed).

    With a ``caller`` (the API) the job is the caller's, may continue only from an adapter the caller sees,
    and passes admission control (429/503 past a cap), which inserts and commits it (batched with other
    submissions, see :mod:`skill_adapter.admission`) and then calls ``after_commit(job)`` (the enqueue); with an
    ``idempotency_key`` already used, the job that key made comes back instead (its ``id`` is not ``job_id``).
    """
    from skill_adapter.skills.folder import load_skill_path

    with work_budget():
        skill = load_skill_path(skill_file)
    config = resolve_config(params, settings=settings)
    config.update(notification_config(params, settings=settings))
    if params.init_adapter is not None:
        config["init_adapter"] = params.init_adapter
        config["init_adapter_path"] = resolve_init_adapter(
            session=session, job_id=params.init_adapter, model=config["model"], caller=caller
        )
    fields: dict[str, Any] = {
        "job_id": job_id or new_job_id(),
        "skill_path": str(skill_file),
        "skill_name": skill.name,
        "config": config,
        "idempotency_key": idempotency_key,
        "owner": caller.owner if caller is not None else None,
    }
    if caller is None:
        return crud.create_job(session=session, **fields)
    job, _ = admit_and_insert(
        settings=settings,
        owner=caller.owner,
        key=idempotency_key,
        insert=lambda batch: crud.create_job(session=batch, flush=False, **fields),
        find=lambda batch, key: crud.job_by_idempotency_key(session=batch, key=key),
        after_commit=after_commit,
    )
    return cast(Job, job)


def notification_config(params: TrainingParams, *, settings: Settings) -> dict[str, Any]:
    """The job's receivers and trackers, checked now: a refused URL or a tracker that is not installed is a 422."""
    from skill_adapter.training.trackers import TRACKER_PACKAGES
    from skill_adapter.webhooks import check_url

    config: dict[str, Any] = {}
    if params.webhook_url is not None:
        check_url(params.webhook_url, allow_private=settings.webhook_allow_private)
        config["webhook_url"] = params.webhook_url.strip()
    if params.webhook_checkpoints:
        config["webhook_checkpoints"] = True
    trackers = [] if params.report_to in (None, "none") else list(dict.fromkeys(params.report_to))
    for name in trackers:
        if importlib.util.find_spec(TRACKER_PACKAGES[name]) is None:
            raise InvalidParameterError(
                f"report_to {name!r} needs the {TRACKER_PACKAGES[name]} package, which is not installed on this "
                f"server; install the '{name}' extra (uv sync --extra {name})",
                field="report_to",
            )
    config["report_to"] = trackers
    return config


def resolve_init_adapter(*, session: Session, job_id: str, model: str, caller: Caller | None = None) -> str:
    """The final adapter of a succeeded job on the same base model, to continue training from."""
    job = session.get(Job, job_id)
    if job is None or (caller is not None and not caller.sees(job.owner)):
        raise InvalidParameterError(f"init_adapter {job_id!r} is not a known job", field="init_adapter")
    adapter = Path(job.adapter_path) if job.adapter_path else None
    if job.status != "succeeded" or adapter is None or not (adapter / "adapter_config.json").is_file():
        raise InvalidParameterError(
            f"init_adapter {job_id!r} has no final adapter (status {job.status}); name a succeeded job",
            field="init_adapter",
        )
    try:
        base = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))["base_model_name_or_path"]
    except (OSError, ValueError, KeyError):
        raise InvalidParameterError(
            f"init_adapter {job_id!r}: its adapter_config.json is unreadable", field="init_adapter"
        ) from None
    if not same_model(base, model):
        raise InvalidParameterError(
            f"init_adapter {job_id!r} was trained on {base!r}, but this server trains {model!r}; "
            "an adapter only continues on the base model it was trained on",
            field="init_adapter",
        )
    return str(adapter)


def store_upload(filename: str, data: bytes, dest: Path) -> Path:
    """Write an uploaded SKILL.md, or safely extract an uploaded skill folder, into ``dest``.

    Returns the SKILL.md to use. ``dest`` belongs to one job (or one preview), never to the skills root.
    The skill lands in a folder named as the user would have named it (the archive's name, or the
    SKILL.md's own ``name``), so the importer's name-versus-folder check means what it says.
    """
    from skill_adapter.core.errors import SkillParseError
    from skill_adapter.skills.folder import extract_archive
    from skill_adapter.skills.parser import parse_skill

    lowered = filename.lower()
    for suffix in (".zip", ".tar.gz", ".tgz"):
        if lowered.endswith(suffix):
            stem = Path(filename).name[: -len(suffix)]
            return extract_archive(data, filename, dest / folder_slug(stem)) / "SKILL.md"
    # The name does not decide (any name may hold a skill), the content does: an archive under another
    # name is unpacked; a known binary format (a PDF, an image) is not a SKILL.md.
    kind = binary_kind(data)
    if kind in ("zip", "tar.gz"):
        stem = Path(filename).name.split(".")[0] or "skill"
        return extract_archive(data, f"{stem}.{kind}", dest / folder_slug(stem)) / "SKILL.md"
    if kind is not None:
        raise InvalidParameterError(
            f"Cannot tell what {Path(filename).name[:200]!r} is: its content is {kind}, not a SKILL.md "
            "(UTF-8 text) nor a skill folder archive (.zip, .tar.gz)",
            field="file",
        )
    try:
        with work_budget():
            name = parse_skill(data).name
    except SkillParseError:  # refused properly when the job or preview loads it
        name = ""
    target = dest / folder_slug(name) / "SKILL.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


_MAGIC = (
    (b"PK\x03\x04", "zip"),
    (b"\x1f\x8b", "tar.gz"),
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x7fELF", "an executable"),
)


def binary_kind(data: bytes) -> str | None:
    """What an upload's first bytes say it is when they name a format: an archive (``zip``, ``tar.gz``) or a
    known binary format; None for anything else, which the SKILL.md parser judges (``skill_invalid``)."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    return None


def folder_slug(name: str) -> str:
    """A safe folder name for an uploaded skill: the spec's lower-case-and-hyphens form, else ``skill``."""
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:64].strip("-")
    return slug or "skill"


def upload_dir(settings: Settings, job_id: str) -> Path:
    """Where an uploaded skill lives: beside the job's dataset and checkpoints."""
    return settings.checkpoint_dir.resolve() / job_id / "skill"


def preview_skill(
    skill_file: Path,
    *,
    settings: Settings,
    seed: int | None = None,
    max_seq_length: int | None = None,
    sample: int = 20,
) -> dict[str, Any]:
    """What a job on this skill would train on: the parsed skill, its findings, statistics and examples."""
    from skill_adapter.datasets.builder import build_dataset
    from skill_adapter.datasets.stats import dataset_stats, find_tokenizer_json
    from skill_adapter.skills.folder import load_skill_path

    seed = settings.seed if seed is None else seed
    max_len = settings.max_seq_length if max_seq_length is None else max_seq_length
    with work_budget(what="parsing the skill and building its dataset"):
        skill = load_skill_path(skill_file)
        dataset = build_dataset(skill, seed=seed)
    stats = dataset_stats(
        dataset, tokenizer_json=find_tokenizer_json(settings.model_name_or_path), max_seq_length=max_len
    )
    skill_data = skill.to_dict()
    findings = skill_data.pop("findings")
    held_out = [{**e.to_record(), "split": "held_out"} for e in _round_robin(dataset.held_out, 2)]
    train = [{**e.to_record(), "split": "train"} for e in _round_robin(dataset.train, max(0, sample - len(held_out)))]
    return {
        "skill": skill_data,
        "findings": findings,
        "dataset_stats": stats,
        "examples": train + held_out,
        "model": settings.model_name_or_path,
        "recipe": settings.recipe,
        "distill": distill_preview(skill_file, skill=skill, settings=settings, seed=seed, max_seq_length=max_len),
    }


def distill_preview(
    skill_file: Path, *, skill: Any, settings: Settings, seed: int, max_seq_length: int
) -> dict[str, Any]:
    """What the distill recipe starts from: the known prompts and their split, how many the model will write,
    and whether the SKILL.md fits the teacher's context (it is cut to fit, and this says so)."""
    from collections import Counter

    from skill_adapter.datasets.distill import filter_prompts, seed_prompts, split_prompts
    from skill_adapter.datasets.stats import find_tokenizer_json

    if skill.source:
        skill_file = Path(skill.source)
    elif skill_file.is_dir():
        skill_file = skill_file / "SKILL.md"
    text = skill_file.read_text(encoding="utf-8", errors="replace")
    dropped: Counter[str] = Counter()
    prompts = filter_prompts(seed_prompts(skill, seed=seed, skill_file=skill_file), skill_text=text, dropped=dropped)
    train, held = split_prompts(prompts, seed=seed)
    tokenizer_json = find_tokenizer_json(settings.model_name_or_path)
    tokens: int | None = None
    if tokenizer_json is not None:
        from tokenizers import Tokenizer

        tokens = len(Tokenizer.from_file(str(tokenizer_json)).encode(text, add_special_tokens=False).ids)
    context = min(settings.model_max_length() or 4096, max(max_seq_length, 256))
    budget = context - settings.teacher_max_new_tokens - 200  # the teacher's frame, as in training.teacher
    return {
        "prompts": [{"prompt": p.text, "source": p.source, "kind": p.kind, "split": "train"} for p in train]
        + [{"prompt": p.text, "source": p.source, "kind": p.kind, "split": "held_out"} for p in held],
        "model_written_prompts": settings.distill_prompts,
        "dropped": dict(dropped),
        "skill_tokens": tokens,
        "teacher_context_tokens": context,
        "skill_truncated_for_teacher": tokens is not None and tokens > budget,
        "note": "the teacher (the base model with this SKILL.md as system prompt) answers these prompts, and "
        "writes more, when the job runs",
    }


def _round_robin(examples: list[Any], count: int) -> list[Any]:
    """Up to ``count`` examples taken from each generator in turn, so a sample shows every kind."""
    groups: dict[str, list[Any]] = {}
    for example in examples:
        groups.setdefault(example.generator, []).append(example)
    picked: list[Any] = []
    index = 0
    while len(picked) < count and any(index < len(group) for group in groups.values()):
        picked += [group[index] for group in groups.values() if index < len(group)][: count - len(picked)]
        index += 1
    return picked
