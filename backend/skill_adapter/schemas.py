"""Request and response models of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Bounds that training accepts. Every hyper-parameter is finite and bounded, so a value that would
# overflow a number type, or make the loss non-finite from the first step, is refused before a job exists.
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds
MAX_STEPS_SETTING = 1_000_000
MAX_LORA_ALPHA = 4096
MAX_SEQ_LENGTH = 1_048_576


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


# One place for the allowed ranges: used by the request model and by the 422 messages.
PARAM_RANGES: dict[str, str] = {
    "num_epochs": "an integer from 1 to 1000",
    "learning_rate": "a number greater than 0 and at most 1",
    "batch_size": "an integer from 1 to 1024",
    "gradient_accumulation_steps": "an integer from 1 to 1024",
    "max_seq_length": "an integer from 16 to the model's maximum context length",
    "lora_r": "an integer from 1 to 256",
    "lora_alpha": f"a finite number greater than 0 and at most {MAX_LORA_ALPHA}",
    "lora_dropout": "a number from 0 (inclusive) to 1 (exclusive)",
    "quant_bits": "4 or 8",
    "adapter_type": '"lora" or "qlora"',
    "save_steps": f"an integer from 1 to {MAX_STEPS_SETTING}",
    "logging_steps": f"an integer from 1 to {MAX_STEPS_SETTING}",
    "seed": f"an integer from 0 to {MAX_SEED}",
    "target_modules": '"all-linear" or a list of module names such as ["q_proj", "v_proj"]',
    "packing": "true or false",
    "gradient_checkpointing": "true or false",
    "eval_steps": f"an integer from 1 to {MAX_STEPS_SETTING}",
    "init_adapter": "the job_id of a succeeded job trained on the same base model",
    "skill_path": "a path to a SKILL.md under the skills root",
    "webhook_url": "an http(s) URL of a public receiver",
    "webhook_checkpoints": "true or false",
    "report_to": '"none" or a list of trackers: "tensorboard", "mlflow", "trackio"',
    "recipe": '"distill" (the base model with the SKILL.md teaches the adapter) or "template" (questions on the skill)',
    "distill_loss": '"kl" (per-token KL to the prompted teacher) or "sft" (the teacher\'s answers as targets)',
    "distill_prompts": "an integer from 0 to 512 (prompts the base model writes with the skill in context)",
    "teacher_max_new_tokens": "an integer from 8 to 2048",
    "distill_top_k": "an integer from 0 to 1024 (0: the full vocabulary)",
    "teacher_temperature": "a number from 0 (greedy) to 2",
}

HYPERPARAMETERS = (
    "adapter_type",
    "num_epochs",
    "learning_rate",
    "batch_size",
    "gradient_accumulation_steps",
    "max_seq_length",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "quant_bits",
    "save_steps",
    "logging_steps",
    "seed",
    "target_modules",
    "packing",
    "gradient_checkpointing",
    "eval_steps",
    "recipe",
    "distill_loss",
    "distill_prompts",
    "teacher_max_new_tokens",
    "distill_top_k",
    "teacher_temperature",
)


class TrainingParams(StrictRequest):
    """Hyper-parameters a start request may set; omitted ones take the configured defaults."""

    adapter_type: Literal["lora", "qlora"] | None = None
    num_epochs: int | None = Field(default=None, ge=1, le=1000)
    learning_rate: float | None = Field(default=None, gt=0, le=1)
    batch_size: int | None = Field(default=None, ge=1, le=1024)
    gradient_accumulation_steps: int | None = Field(default=None, ge=1, le=1024)
    max_seq_length: int | None = Field(default=None, ge=16, le=MAX_SEQ_LENGTH)
    lora_r: int | None = Field(default=None, ge=1, le=256)
    lora_alpha: float | None = Field(default=None, gt=0, le=MAX_LORA_ALPHA)
    lora_dropout: float | None = Field(default=None, ge=0, lt=1)
    quant_bits: Literal[4, 8] | None = None
    save_steps: int | None = Field(default=None, ge=1, le=MAX_STEPS_SETTING)
    logging_steps: int | None = Field(default=None, ge=1, le=MAX_STEPS_SETTING)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    target_modules: Literal["all-linear"] | list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$")]] | None = Field(
        default=None, min_length=1
    )
    packing: bool | None = None
    gradient_checkpointing: bool | None = None
    eval_steps: int | None = Field(default=None, ge=1, le=MAX_STEPS_SETTING)
    recipe: Literal["distill", "template"] | None = None
    distill_loss: Literal["kl", "sft"] | None = None
    distill_prompts: int | None = Field(default=None, ge=0, le=512)
    teacher_max_new_tokens: int | None = Field(default=None, ge=8, le=2048)
    distill_top_k: int | None = Field(default=None, ge=0, le=1024)
    teacher_temperature: float | None = Field(default=None, ge=0, le=2)
    init_adapter: str | None = Field(default=None, pattern=r"^train-[0-9a-f]{6,32}$")
    webhook_url: str | None = Field(
        default=None, min_length=1, max_length=2048, description="POSTed (signed) when the job ends; docs/events.md"
    )
    webhook_checkpoints: bool | None = Field(default=None, description="Also POST each saved checkpoint")
    report_to: Literal["none"] | list[Literal["tensorboard", "mlflow", "trackio"]] | None = Field(
        default=None, description="Experiment trackers that receive the training metrics (none by default)"
    )


class TrainingStartRequest(TrainingParams):
    """The guide's JSON body for ``POST /api/training/start``."""

    skill_path: str = Field(min_length=1, max_length=4096)


class PreviewUploadRequest(StrictRequest):
    """Form fields that may come with an uploaded skill to preview."""

    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    max_seq_length: int | None = Field(default=None, ge=16, le=MAX_SEQ_LENGTH)


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
