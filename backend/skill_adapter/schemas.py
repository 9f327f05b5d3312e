"""Request and response models of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from skill_adapter.core.params import BY_NAME, HYPERPARAMETERS, MAX_SEQ_LENGTH, PARAMS, request_fields

__all__ = ["HYPERPARAMETERS", "PARAM_RANGES", "TrainingParams"]


def _takes_int(annotation: Any) -> bool:
    return annotation is int or any(_takes_int(arg) for arg in get_args(annotation))


class StrictRequest(BaseModel):
    """A request body: strict types (no strings for numbers, no booleans for integers), finite numbers, no
    unknown fields. JSON Schema's "integer" includes 237.0, so a float with no fractional part is taken as
    that integer for an integer field (before validation, which keeps the constraints in the schema)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _integral_floats(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        return {
            key: int(value)
            if isinstance(value, float)
            and value.is_integer()
            and key in fields
            and _takes_int(fields[key].annotation)
            and abs(value) < 2**63
            else value
            for key, value in data.items()
        }


# The allowed ranges in words, for the 422 messages: every training parameter's (core/params.py), and skill_path.
PARAM_RANGES: dict[str, str] = {
    **{param.name: param.allowed for param in PARAMS},
    "skill_path": "a path to a SKILL.md under the skills root",
}

if TYPE_CHECKING:  # the fields come from the table; to type checkers each one is Any

    class TrainingParams(StrictRequest):
        def __getattr__(self, name: str) -> Any: ...

else:
    TrainingParams = create_model(
        "TrainingParams",
        __base__=StrictRequest,
        __doc__="Hyper-parameters a start request may set; omitted ones take the configured defaults.",
        __module__=__name__,
        **request_fields(),
    )


class TrainingStartRequest(TrainingParams):
    """The guide's JSON body for ``POST /api/training/start``."""

    skill_path: str = Field(min_length=1, max_length=4096)


class PreviewUploadRequest(StrictRequest):
    """Form fields that may come with an uploaded skill to preview."""

    seed: int | None = BY_NAME["seed"].request_field()[1]
    max_seq_length: int | None = BY_NAME["max_seq_length"].request_field()[1]


class PreviewRequest(PreviewUploadRequest):
    """``POST /api/skills/preview`` with a skill on the server."""

    skill_path: str = Field(min_length=1, max_length=4096)


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class JobCreated(BaseModel):
    job_id: str
    status: str
    created_at: datetime


class JobStatus(BaseModel):
    """The guide's status fields, plus what a dashboard needs."""

    job_id: str
    status: str
    progress: float
    current_epoch: int
    total_epochs: int
    loss: float | None
    started_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    step: int
    total_steps: int | None
    learning_rate: float | None
    eval_loss: float | None
    eta_seconds: float | None
    attempts: int
    skill_name: str
    adapter_path: str | None
    error: ErrorBody | None
    config: dict[str, Any]


class JobSummary(BaseModel):
    job_id: str
    status: str
    skill_name: str
    progress: float
    current_epoch: int
    total_epochs: int
    loss: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: ErrorBody | None


class JobsPublic(BaseModel):
    data: list[JobSummary]
    count: int


class LogLinePublic(BaseModel):
    id: int
    ts: datetime
    level: str
    message: str


class LogsPage(BaseModel):
    lines: list[LogLinePublic]
    next: int


class MetricPointPublic(BaseModel):
    id: int
    ts: datetime
    step: int
    epoch: float | None
    loss: float | None
    eval_loss: float | None
    learning_rate: float | None
    grad_norm: float | None
    tokens_per_second: float | None
    elapsed_seconds: float | None
    eta_seconds: float | None
    gpu_utilization: float | None
    gpu_memory_mb: float | None


class MetricsPage(BaseModel):
    points: list[MetricPointPublic]
    next: int


class DatasetExamplePublic(BaseModel):
    split: str
    prompt: str
    completion: str
    source: str | None = Field(description="where the prompt came from (distill) or the template generator")
    kind: str | None = None
    section: str | None = None


class DatasetPublic(BaseModel):
    """What a job trains on: its saved examples with their provenance, and the distill summary."""

    job_id: str
    recipe: str
    summary: dict[str, Any] | None = Field(description="distill: teacher settings, counts per source, drops")
    examples: list[DatasetExamplePublic]
    count: int


class CheckpointPublic(BaseModel):
    step: int | None
    name: str
    path: str
    complete: bool
    metrics: dict[str, float] = Field(
        default_factory=dict, description="train_loss, validation_loss, train/validation_token_accuracy at the step"
    )


class JobEventPublic(BaseModel):
    id: int
    time: datetime
    level: str
    type: str
    message: str
    data: dict[str, Any]


class EventsPage(BaseModel):
    data: list[JobEventPublic]
    next: int


class CheckpointsPublic(BaseModel):
    data: list[CheckpointPublic]
    count: int


class EvaluateRequest(StrictRequest):
    """Options of ``POST /api/training/{job_id}/evaluate``; an empty body evaluates the held-out split."""

    source: Literal["held_out", "evals"] | None = Field(
        default=None, description="held_out (default) or evals: inline `evals`, else the skill's evals/evals.json"
    )
    evals: dict[str, Any] | None = Field(default=None, description="cases in the agentskills evals.json format")
    max_new_tokens: int | None = Field(default=None, ge=1, le=4096)
    limit: int | None = Field(default=None, ge=1, le=1000, description="evaluate only the first N cases")
    max_context_tokens: int | None = Field(
        default=None,
        ge=32,
        le=MAX_SEQ_LENGTH,
        description="treat the model's context as this long (at most its real one)",
    )


class EvaluationCreated(BaseModel):
    evaluation_id: str
    job_id: str
    status: str
    created_at: datetime


class EvaluationSummary(BaseModel):
    evaluation_id: str
    job_id: str
    status: str
    progress: float
    params: dict[str, Any]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    report_path: str | None = None
    error: ErrorBody | None = None


class EvaluationPublic(EvaluationSummary):
    report: dict[str, Any] | None = None


class EvaluationsPublic(BaseModel):
    data: list[EvaluationSummary]
    count: int


# ---- GET /api/config -------------------------------------------------------------------------------------


class BaseModelInfo(BaseModel):
    """The base model jobs train (resolution only); when it cannot be resolved, name, ready and problem."""

    name: str | None
    ready: bool
    problem: str | None = None
    kind: Literal["builtin", "folder", "hub"] | None = None
    path: str | None = None
    builtin: str | None = None
    converts_on_first_use: bool | None = None
    parameters: int | None = None
    size_bytes: int | None = None
    title: str | None = None
    summary: str | None = None


class ParamChoice(BaseModel):
    value: str | int
    label: str


class ParamSpec(BaseModel):
    """How the dashboard's form shows, checks and sends one training parameter (core/params.py)."""

    name: str
    label: str
    help: str
    allowed: str = Field(description="the allowed values in words")
    group: Literal["guide", "advanced", "notify"]
    kind: Literal["int", "float", "choice", "list", "text", "tristate"]
    default: Any = Field(description="this server's default; null: none configured (the server decides)")
    min: float | None
    max: float | None
    min_exclusive: bool
    max_exclusive: bool
    pattern: str | None = Field(description="a text value (or each list item) must match it")
    choices: list[ParamChoice] = Field(description="the values the parameter itself may take")
    item_choices: list[ParamChoice] = Field(description="a list parameter: the values its items may take")
    only_when: dict[str, str] = Field(description="read only when these parameters have these values")
    setting: str | None = Field(description="the environment variable that sets the default")


if TYPE_CHECKING:
    ParamDefaults = BaseModel
else:
    ParamDefaults = create_model(
        "ParamDefaults",
        __doc__="Every training parameter's default on this server (null: none configured).",
        __module__=__name__,
        **{param.name: (param.annotation | None, ...) for param in PARAMS},
    )


def _config_example() -> dict[str, Any]:
    """``/api/config`` of a server with every default, on the tiny test model (the dashboard's tests use it)."""
    from skill_adapter.core.params import param_specs

    specs = param_specs()
    return {
        "model": "/models/tiny-qwen3",
        "base_model": {"name": "tiny", "ready": True, "kind": "builtin", "path": "/models/tiny-qwen3"},
        "model_max_length": 4096,
        "defaults": {spec["name"]: spec["default"] for spec in specs},
        "ranges": PARAM_RANGES,
        "parameters": specs,
    }


class ServerConfig(BaseModel):
    """``GET /api/config``: every training parameter's default, range and form, and the base model."""

    model_config = ConfigDict(json_schema_extra={"examples": [_config_example()]}, protected_namespaces=())

    model: str
    base_model: BaseModelInfo
    model_max_length: int | None
    defaults: ParamDefaults
    ranges: dict[str, str]
    parameters: list[ParamSpec]
