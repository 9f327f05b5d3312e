"""What the model server can answer with: the base model and every succeeded job's adapter (torch-free).

``model`` in a request is the base model's name (or its path), a job id, or a skill name (that skill's
newest succeeded adapter). Adapters are read from the job table, so a job that succeeds is servable at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from skill_adapter.core.base_models import portable_model_path, same_model
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from skill_adapter.models import Job
from skill_adapter.serving.protocol import ServingError

MAX_SKILL_BYTES = 1_000_000


@dataclass(frozen=True)
class Adapter:
    """A succeeded job's final adapter."""

    id: str
    skill_name: str
    path: Path
    base: str  # base_model_name_or_path as adapter_config.json records it
    created: int
    skill_path: Path


class Catalog:
    """Resolves request ``model`` names against the configured base model and the job table."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        resolved = settings.base_model()
        self.base_name = resolved.name
        self.base_path = resolved.path
        self._base_names = {resolved.name, resolved.path, portable_model_path(resolved.path)}

    def is_base(self, model: str) -> bool:
        return model in self._base_names

    def adapters(self, owner: str | None = None) -> list[Adapter]:
        """Every succeeded job whose adapter folder is still there, newest first (only ``owner``'s, if given)."""
        query = select(Job.id, Job.skill_name, Job.adapter_path, Job.created_at, Job.skill_path, Job.config).where(
            Job.status == "succeeded", Job.adapter_path.is_not(None)
        )
        if owner is not None:
            query = query.where(Job.owner == owner)
        with session_scope(self.settings) as session:
            rows = session.execute(query.order_by(Job.created_at.desc())).all()
        found = []
        for job_id, skill_name, adapter_path, created_at, skill_path, config in rows:
            path = Path(adapter_path)
            base = _recorded_base(path) or str((config or {}).get("model", ""))
            if not (path / "adapter_config.json").is_file():
                continue
            found.append(
                Adapter(
                    id=job_id,
                    skill_name=skill_name or "",
                    path=path,
                    base=base,
                    created=int(created_at.timestamp()) if created_at else 0,
                    skill_path=Path(skill_path),
                )
            )
        return found

    def resolve(self, model: str, *, param: str = "model", owner: str | None = None) -> Adapter | None:
        """``None`` for the base model, else the adapter ``model`` names; 404 in OpenAI's shape otherwise
        (also for another owner's adapter, when ``owner`` is given)."""
        if self.is_base(model):
            return None
        adapters = self.adapters(owner)
        for adapter in adapters:  # a job id first, then the newest adapter of a skill of that name
            if adapter.id == model:
                return adapter
        for adapter in adapters:
            if adapter.skill_name == model:
                return adapter
        raise ServingError(
            404,
            "model_not_found",
            f"The model {model!r} does not exist: name the base model ({self.base_name}), a succeeded job's id, "
            "or a skill name; GET /v1/models lists them",
            param=param,
        )

    def same_base(self, adapter: Adapter) -> bool:
        return same_model(adapter.base, self.base_path)

    def check_base(self, adapter: Adapter) -> None:
        """409 when ``adapter`` was trained on another base than the one this server holds."""
        if not self.same_base(adapter):
            raise ServingError(
                409,
                "adapter_base_mismatch",
                f"The adapter {adapter.id} was trained on {adapter.base!r}, but this model server holds "
                f"{self.base_path!r}; serve it from a model server started with SKILL_ADAPTER_MODEL={adapter.base}",
                param="model",
            )

    def skill_text(self, name: str, owner: str | None = None) -> str:
        """The SKILL.md text of the job (or newest job of the skill) that ``name`` names."""
        adapter = self.resolve(name, param="with_skill", owner=owner)
        if adapter is None:
            raise ServingError(400, "invalid_parameter", "with_skill names a job or a skill", param="with_skill")
        try:
            data = adapter.skill_path.read_bytes()[:MAX_SKILL_BYTES]
        except OSError:
            raise ServingError(
                404, "skill_not_found", f"{adapter.id}: SKILL.md gone ({adapter.skill_path})", param="with_skill"
            ) from None
        return data.decode("utf-8-sig", errors="replace")


def _recorded_base(adapter_path: Path) -> str | None:
    try:
        value = json.loads((adapter_path / "adapter_config.json").read_text(encoding="utf-8"))
        return str(value["base_model_name_or_path"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
