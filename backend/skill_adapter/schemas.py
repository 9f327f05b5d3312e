"""Request and response models of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    create_model,
    model_serializer,
    model_validator,
)

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


class _Stored(BaseModel):
    """JSON the service stored earlier and answers as it was written: keys of a later version pass through,
    and fields a record lacks (it predates them) stay absent in the answer instead of showing as null."""

    model_config = ConfigDict(extra="allow")

    @model_serializer(mode="wrap")
    def _as_stored(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        # No return annotation: pydantic would take it as the serialised schema (the OpenAPI types need ours).
        data = handler(self)
        extra = self.__pydantic_extra__ or {}
        return {key: value for key, value in data.items() if key in self.model_fields_set or key in extra}


class DistillSummary(_Stored):
    """``distill.json`` of a distill job: the teacher's settings, examples per source and split, what was
    dropped and why. Keys a later version adds pass through."""

    recipe: str | None = None
    teacher: dict[str, Any] | None = Field(default=None, description="the teacher's settings (they key the cache)")
    dropped: dict[str, int] | None = Field(default=None, description="examples dropped, per reason")
    sources: dict[str, dict[str, int]] | None = Field(default=None, description="examples per split, per source")
    train: int | None = None
    held_out: int | None = None
    seed: int | None = None
    cache_key: str | None = None


class DatasetPublic(BaseModel):
    """What a job trains on: its saved examples with their provenance, and the distill summary."""

    job_id: str
    recipe: str
    summary: DistillSummary | None = Field(description="distill: teacher settings, counts per source, drops")
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


class ChatMessagePublic(BaseModel):
    role: str
    content: str


# ---- the evaluation report (evaluation/runner.py writes it; docs/evaluation.md describes it) ---------------
# A report is stored with its evaluation and read back as written: reports from older versions lack the fields
# added since (those have defaults and are left out of the answer when absent) and newer keys pass through.


class ArmMetrics(_Stored):
    """One arm's figures over every case (null where a metric means nothing on this run)."""

    perplexity: float | None
    accuracy: float | None
    bleu: float | None
    chrf: float | None
    prompt_tokens_per_call: float | None
    scored_cases: int | None = Field(default=None, description="cases with an exact reference (text metrics)")
    seconds: float | None = None
    kl_to_prompted: float | None = Field(default=None, description="mean KL per token to base + SKILL.md")
    expectations_checked: int | None = None
    expectation_pass_rate: float | None = None


class Internalisation(_Stored):
    ratio: float | None
    reason: str | None = Field(description="why the ratio means nothing on this run (null when it does)")


class ArmOutput(_Stored):
    output: str
    perplexity: float | None
    chrf: float | None
    exact: bool | None = None
    prompt_tokens: int | None = None
    kl_to_prompted: float | None = None
    expectations: list[bool] | None = Field(default=None, description="each expectation of the case: met or not")


class EvalExamplePublic(_Stored):
    id: str
    prompt: str | list[ChatMessagePublic]
    reference: str
    exact: bool | None = None
    section: str | None = None
    generator: str | None = None
    files: list[str] | None = None
    expectations: list[dict[str, Any]] | None = None
    outputs: dict[Literal["base", "base_with_skill", "adapter"], ArmOutput]


class GenerationSettings(_Stored):
    do_sample: bool
    max_new_tokens: int
    num_beams: int | None = None
    batch_size: int | None = None


class SkillContext(_Stored):
    tokens: int | None = None
    tokens_used: int | None = None
    truncated: bool | None = None


class EvaluationReport(_Stored):
    """Three arms (base, base + SKILL.md, adapter) on the same cases, and how much of the skill's effect
    the adapter reproduces."""

    source: Literal["held_out", "evals"]
    num_examples: int
    generation: GenerationSettings
    skill_truncated: bool
    arms: dict[Literal["base", "base_with_skill", "adapter"], ArmMetrics]
    internalisation: dict[str, Internalisation] = Field(
        description="per metric: the share of the skill's effect the adapter reproduces"
    )
    prompt_tokens_saved_per_call: float | None
    examples: list[EvalExamplePublic]
    best: list[str]
    worst: list[str]
    notes: list[str] | None = Field(default=None, description="which figures mean nothing on this run, and why")
    arm_titles: dict[str, str] | None = Field(default=None, description="what each arm is called in words")
    limit: int | None = None
    model: str | None = None
    adapter_path: str | None = None
    context_tokens: int | None = None
    skill: SkillContext | None = None
    elapsed_seconds: float | None = None
    evaluation_id: str | None = None
    job_id: str | None = None
    skill_name: str | None = None
    seed: int | None = None


class EvaluationPublic(EvaluationSummary):
    report: EvaluationReport | None = None


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
        "model": "tiny-qwen3",
        "base_model": {"name": "tiny", "ready": True, "kind": "builtin", "path": "tiny-qwen3"},
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


# ---- GET /api/skills, POST /api/skills/preview ----------------------------------------------------------------


class SkillEntry(BaseModel):
    path: str = Field(description="a valid `skill_path`, relative to the skills root")
    name: str = Field(description="the frontmatter's name (empty when it has none)")


class SkillsPublic(BaseModel):
    """The SKILL.md files under the skills root (the dashboard's skill picker)."""

    root: str = Field(description="the skills root's folder name (never an absolute server path)")
    data: list[SkillEntry]
    count: int


class FindingPublic(BaseModel):
    """A spec violation or a repair the importer made (never fatal)."""

    code: str
    message: str
    line: int | None
    severity: Literal["warning", "info"]


class CodeBlockPublic(BaseModel):
    language: str
    code: str
    line: int


class SectionPublic(BaseModel):
    """One heading of the body and the markdown under it."""

    title: str
    level: int
    line: int
    text: str
    parents: list[str]
    paragraphs: list[str]
    bullets: list[str]
    steps: list[str]
    code_blocks: list[CodeBlockPublic]
    path: str = Field(description="the headings above it and its own, joined with ' > '")


class ExplicitExamplePublic(BaseModel):
    """An input/output pair the author wrote in the body."""

    input: str
    output: str
    section: str
    line: int


class ReferencePublic(BaseModel):
    """A file under scripts/, references/ or assets/ that the body names."""

    path: str
    kind: Literal["scripts", "references", "assets"]
    line: int
    text: str | None
    exists: bool | None


class SkillPublic(BaseModel):
    """The parsed SKILL.md: frontmatter fields and body structure."""

    name: str
    description: str
    body: str
    license: str | None
    compatibility: str | None
    metadata: dict[str, str]
    allowed_tools: list[str]
    extra: dict[str, Any] = Field(description="frontmatter keys outside the spec, as written")
    sections: list[SectionPublic]
    examples: list[ExplicitExamplePublic]
    references: list[ReferencePublic]
    source: str | None = Field(description="the skill as the client named it (its skill_path or upload name)")


class TokenStats(BaseModel):
    min: int
    max: int
    mean: float
    p50: int
    p95: int
    total: int


class TokenCounts(BaseModel):
    exact: bool = Field(description="counted with the model's tokenizer.json; false: four characters per token")
    tokenizer: str | None
    all: TokenStats
    train: TokenStats


class DatasetStats(BaseModel):
    train_examples: int
    held_out_examples: int
    by_generator: dict[str, dict[str, int]] = Field(description="per split, examples per generator")
    held_out_sections: list[str]
    dropped: dict[str, int] = Field(description="examples dropped, per reason")
    tokens: TokenCounts
    max_seq_length: int
    over_max_seq_length: int
    seed: int


class PreviewExample(BaseModel):
    """One example as training gets it: TRL's conversational prompt/completion, plus its tags."""

    prompt: list[ChatMessagePublic]
    completion: list[ChatMessagePublic]
    generator: str
    section: str | None
    kind: str
    split: Literal["train", "held_out"]


class DistillPrompt(BaseModel):
    prompt: str
    source: str
    kind: str
    split: Literal["train", "held_out"]


class DistillPreview(BaseModel):
    """What the distill recipe starts from, and whether the SKILL.md fits the teacher's context."""

    prompts: list[DistillPrompt]
    model_written_prompts: int
    dropped: dict[str, int]
    skill_tokens: int | None
    teacher_context_tokens: int
    skill_truncated_for_teacher: bool
    note: str


class PreviewPublic(BaseModel):
    """``POST /api/skills/preview``: what a job on this skill would train on, without starting one."""

    model_config = ConfigDict(protected_namespaces=())

    skill: SkillPublic
    findings: list[FindingPublic]
    dataset_stats: DatasetStats
    examples: list[PreviewExample]
    model: str
    recipe: Literal["template", "distill"]
    distill: DistillPreview


# ---- GET /api/health ----------------------------------------------------------------------------------------
# Health answers whatever it could learn, so its parts allow keys beyond those listed (a check's own details).


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class HealthCheck(_Open):
    """The database or the broker: ``status`` ok or error, and (to a caller the server knows) the details."""

    status: Literal["ok", "error"]
    url: str | None = None
    latency_ms: float | None = None
    error: str | None = None
    dialect: str | None = None
    revision: str | None = None
    head: str | None = None
    transport: str | None = None
    folder: str | None = None
    messages: dict[str, int] | None = Field(default=None, description="messages waiting, per queue")


class WorkerPublic(_Open):
    id: str
    name: str
    hostname: str
    pid: int
    queues: list[str]
    device: str | None
    gpu_name: str | None
    gpu_free_mb: float | None
    gpu_total_mb: float | None
    details: dict[str, Any]
    job_id: str | None = Field(description="the training job or evaluation it runs")
    started_at: datetime
    heartbeat_at: datetime


class EmbeddedWorkerState(_Open):
    pid: int
    status: Literal["starting", "running", "not responding", "exited"]
    exit_code: int | None
    seconds_since_start: float


class HealthPublic(_Open):
    """``GET /api/health`` (200, or 503 with the same body). A caller without a valid key, on a server that
    has keys, gets only ``status``, each check's ``status`` and ``auth: "required"``."""

    status: Literal["ok", "unavailable"]
    database: HealthCheck
    broker: HealthCheck
    workers: list[WorkerPublic] | None = None
    embedded_worker: EmbeddedWorkerState | None = None
    model: BaseModelInfo | None = None
    warnings: list[str] | None = None
    auth: Literal["required"] | None = None
