"""Every training parameter, declared once: name, type, default, range, help text.

To add a parameter, add one :class:`Param` to :data:`PARAMS` (and read it where training uses it). From this
table come:

- the request schema (``schemas.TrainingParams``: every field optional, omitted means "the configured default"),
  and so the OpenAPI schema and the dashboard's generated TypeScript types (``npm run gen:types``);
- the settings (``core/config.Settings``): a parameter with a ``setting`` is read from ``SKILL_ADAPTER_<SETTING>``
  with the same default, range and help;
- the 422 messages and ``/api/config`` (``defaults``, ``ranges`` and ``parameters``, which the dashboard's form
  is drawn from);
- the flags of ``skill-adapter train``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import Field

# Bounds that training accepts. Every hyper-parameter is finite and bounded, so a value that would
# overflow a number type, or make the loss non-finite from the first step, is refused before a job exists.
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds
MAX_STEPS_SETTING = 1_000_000
MAX_LORA_ALPHA = 4096
MAX_SEQ_LENGTH = 1_048_576

MODULE_NAME = r"^[A-Za-z0-9_.\-]+$"

Group = Literal["guide", "advanced", "notify"]


@dataclass(frozen=True)
class Param:
    """One training parameter.

    ``annotation`` is the request's type (a request may always leave the field out). ``default`` is the
    configured default, in the request's form; ``None`` where nothing is configured. ``setting`` names the
    ``Settings`` field (environment variable ``SKILL_ADAPTER_<SETTING>``), or ``None`` for a per-request option.
    A parameter whose type includes a list is written as names separated by commas in its variable and flag.
    """

    name: str
    annotation: Any
    default: Any
    label: str
    help: str
    allowed: str  # the range in words: the 422 messages and the form say it
    group: Group = "guide"
    bounds: dict[str, Any] = field(default_factory=dict)  # ge, gt, le, lt (numbers)
    constraints: dict[str, Any] = field(default_factory=dict)  # other pydantic Field constraints (request)
    setting: str | None = None
    flag: str | None = None  # `train --FLAG`; default: the name with dashes
    cli: bool = True  # whether `train` has a flag for it
    choice_labels: dict[str, str] = field(default_factory=dict)
    example: Any = None  # a valid value, for a parameter without a default (tests, docs)
    hyper: bool = True  # part of every job's resolved config (a notification option is not)
    nullable_setting: bool = False  # the variable may be blank: unset (the default is None)
    only_when: dict[str, str] = field(default_factory=dict)  # read only when these parameters have these values

    # ---- derived --------------------------------------------------------------------------------------
    @property
    def is_list(self) -> bool:
        return any(get_origin(arg) is list for arg in _alternatives(self.annotation))

    @property
    def scalar(self) -> Any:
        """The number/str/bool type of a numeric or boolean parameter; None for choices and lists."""
        return self.annotation if self.annotation in (int, float, str, bool) else None

    @property
    def choices(self) -> list[Any]:
        """Literal values the parameter takes (for a list: the values of its items too)."""
        return self.literal_values(items=False) + self.literal_values(items=True)

    def literal_values(self, *, items: bool) -> list[Any]:
        """The Literal values of the parameter itself (``items=False``) or of its list's items (``items=True``)."""
        values: list[Any] = []
        for arg in _alternatives(self.annotation):
            if not items and get_origin(arg) is Literal:
                values.extend(get_args(arg))
            elif items and get_origin(arg) is list and get_origin(get_args(arg)[0]) is Literal:
                values.extend(get_args(get_args(arg)[0]))
        return values

    @property
    def flag_name(self) -> str:
        return "--" + (self.flag or self.name).replace("_", "-")

    @property
    def flag_dest(self) -> str:
        return (self.flag or self.name).replace("-", "_")

    def request_field(self) -> tuple[Any, Any]:
        """``(annotation, FieldInfo)`` of the request model's field."""
        return self.annotation | None, Field(default=None, description=self.help, **self.bounds, **self.constraints)

    def settings_field(self) -> tuple[Any, Any]:
        """``(annotation, FieldInfo)`` of the ``Settings`` field: lists are text with commas."""
        annotation = str if self.is_list else self.annotation
        if self.nullable_setting:
            annotation = annotation | None
        return annotation, Field(default=self.to_setting(self.default), description=self.help, **self.bounds)

    def to_setting(self, value: Any) -> Any:
        return ",".join(value) if isinstance(value, list) else value

    def from_setting(self, value: Any) -> Any:
        """A setting's (or a flag's) value in the request's form: "q_proj,v_proj" becomes a list."""
        if not self.is_list or not isinstance(value, str) or value in self.choices:
            return value
        return [name.strip() for name in value.split(",") if name.strip()]

    def shown_default(self) -> str:
        if self.default is None:
            return "unset"
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        return str(self.to_setting(self.default))

    def cli_words(self, value: Any) -> list[str]:
        """The flag words that give ``value`` (tests and docs)."""
        if self.annotation is bool:
            return [self.flag_name if value else "--no-" + self.flag_name[2:]]
        return [self.flag_name, str(self.to_setting(value))]

    def spec(self) -> dict[str, Any]:
        """What the dashboard's form needs to draw, check and send this field (``/api/config``)."""
        kind = (
            "tristate"
            if self.annotation is bool
            else "int"
            if self.annotation is int
            else "float"
            if self.annotation is float
            else "list"
            if self.is_list
            else "choice"
            if self.choices
            else "text"
        )
        spec: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "help": self.help,
            "allowed": self.allowed,
            "group": self.group,
            "kind": kind,
            "default": self.default,
            "min": self.bounds.get("ge", self.bounds.get("gt")),
            "max": self.bounds.get("le", self.bounds.get("lt")),
            "min_exclusive": "gt" in self.bounds,
            "max_exclusive": "lt" in self.bounds,
            "pattern": self.constraints.get("pattern") or _item_pattern(self.annotation),
            "choices": [self._choice(value) for value in self.literal_values(items=False)],
            "item_choices": [self._choice(value) for value in self.literal_values(items=True)],
            "only_when": self.only_when,
            "setting": f"SKILL_ADAPTER_{self.setting.upper()}" if self.setting else None,
        }
        return spec

    def _choice(self, value: Any) -> dict[str, Any]:
        return {"value": value, "label": self.choice_labels.get(str(value), str(value))}


def _alternatives(annotation: Any) -> tuple[Any, ...]:
    args = get_args(annotation)
    return (
        args if args and get_origin(annotation) is not Literal and get_origin(annotation) is not list else (annotation,)
    )


def _item_pattern(annotation: Any) -> str | None:
    for arg in _alternatives(annotation):
        if get_origin(arg) is list:
            for meta in getattr(get_args(arg)[0], "__metadata__", ()):
                pattern = getattr(meta, "pattern", None)
                if pattern is None:
                    pattern = next((getattr(m, "pattern", None) for m in getattr(meta, "metadata", [])), None)
                if pattern:
                    return str(pattern)
    return None


STEPS: dict[str, Any] = {"ge": 1, "le": MAX_STEPS_SETTING}

PARAMS: tuple[Param, ...] = (
    Param(
        "adapter_type",
        Literal["lora", "qlora"],
        "lora",
        label="Adapter type",
        help="lora trains in the model's precision; qlora quantises the base model first (needs bitsandbytes)",
        allowed='"lora" or "qlora"',
        setting="adapter",
        flag="adapter",
        choice_labels={"lora": "LoRA", "qlora": "QLoRA"},
    ),
    Param(
        "num_epochs",
        int,
        3,
        label="Epochs",
        help="Passes over the training set",
        allowed="an integer from 1 to 1000",
        bounds={"ge": 1, "le": 1000},
        setting="num_epochs",
        flag="epochs",
    ),
    Param(
        "learning_rate",
        float,
        2e-4,
        label="Learning rate",
        help="Peak learning rate of the schedule",
        allowed="a number greater than 0 and at most 1",
        bounds={"gt": 0, "le": 1},
        setting="learning_rate",
    ),
    Param(
        "batch_size",
        int,
        4,
        label="Batch size",
        help="Examples per device step",
        allowed="an integer from 1 to 1024",
        bounds={"ge": 1, "le": 1024},
        setting="batch_size",
    ),
    Param(
        "gradient_accumulation_steps",
        int,
        4,
        label="Gradient accumulation steps",
        help="Device steps per optimizer step (effective batch: batch_size times this)",
        allowed="an integer from 1 to 1024",
        bounds={"ge": 1, "le": 1024},
        setting="gradient_accumulation_steps",
    ),
    Param(
        "max_seq_length",
        int,
        2048,
        label="Max sequence length",
        help="Tokens per example; longer examples are truncated",
        allowed="an integer from 16 to the model's maximum context length",
        bounds={"ge": 16, "le": MAX_SEQ_LENGTH},
        setting="max_seq_length",
    ),
    Param(
        "lora_r",
        int,
        16,
        label="LoRA rank (r)",
        help="Rank of the update matrices",
        allowed="an integer from 1 to 256",
        bounds={"ge": 1, "le": 256},
        setting="lora_r",
    ),
    Param(
        "lora_alpha",
        float,
        32.0,
        label="LoRA alpha",
        help="Scale of the update (alpha / r)",
        allowed=f"a finite number greater than 0 and at most {MAX_LORA_ALPHA}",
        bounds={"gt": 0, "le": MAX_LORA_ALPHA},
        setting="lora_alpha",
    ),
    Param(
        "lora_dropout",
        float,
        0.05,
        label="LoRA dropout",
        help="Dropout on the LoRA input",
        allowed="a number from 0 (inclusive) to 1 (exclusive)",
        bounds={"ge": 0, "lt": 1},
        setting="lora_dropout",
    ),
    Param(
        "quant_bits",
        Literal[4, 8],
        4,
        label="Quantisation bits",
        help="QLoRA only: quantise the base model to 4 or 8 bits",
        allowed="4 or 8",
        setting="quant_bits",
        choice_labels={"4": "4-bit", "8": "8-bit"},
        only_when={"adapter_type": "qlora"},
    ),
    Param(
        "save_steps",
        int,
        100,
        label="Save every N steps",
        help="Checkpoint interval in optimizer steps",
        allowed=f"an integer from 1 to {MAX_STEPS_SETTING}",
        bounds=STEPS,
        setting="save_steps",
    ),
    Param(
        "logging_steps",
        int,
        1,
        label="Log every N steps",
        help="Metric interval in optimizer steps",
        allowed=f"an integer from 1 to {MAX_STEPS_SETTING}",
        bounds=STEPS,
        setting="logging_steps",
    ),
    Param(
        "seed",
        int,
        42,
        label="Seed",
        help="For the split, shuffling and initialisation",
        allowed=f"an integer from 0 to {MAX_SEED}",
        bounds={"ge": 0, "le": MAX_SEED},
        setting="seed",
    ),
    Param(
        "target_modules",
        Literal["all-linear"] | list[Annotated[str, Field(pattern=MODULE_NAME)]],
        "all-linear",
        label="Target modules",
        help='LoRA targets: "all-linear", or module names (q_proj,v_proj as a variable or flag)',
        allowed='"all-linear" or a list of module names such as ["q_proj", "v_proj"]',
        group="advanced",
        constraints={"min_length": 1},
        setting="target_modules",
    ),
    Param(
        "packing",
        bool,
        False,
        label="Packing",
        help="Pack short examples into full rows (padding-free)",
        allowed="true or false",
        group="advanced",
        setting="packing",
    ),
    Param(
        "gradient_checkpointing",
        bool,
        None,
        label="Gradient checkpointing",
        help="Saves memory, costs time. Unset: on for CUDA, off on the CPU",
        allowed="true or false",
        group="advanced",
        setting="gradient_checkpointing",
        nullable_setting=True,
        example=True,
    ),
    Param(
        "eval_steps",
        int,
        None,
        label="Evaluate every N steps",
        help="Also evaluate every N steps (always once per epoch)",
        allowed=f"an integer from 1 to {MAX_STEPS_SETTING}",
        group="advanced",
        bounds=STEPS,
        setting="eval_steps",
        nullable_setting=True,
        example=10,
    ),
    Param(
        "recipe",
        Literal["distill", "template"],
        "template",  # distill is not the default yet: see docs/distill.md, "Why not the default yet"
        label="Recipe",
        help="distill: the base model with the SKILL.md in context writes the answers the adapter learns; "
        "template: questions about the skill answered with its own text",
        allowed='"distill" (the base model with the SKILL.md teaches the adapter) '
        'or "template" (questions on the skill)',
        setting="recipe",
        choice_labels={"distill": "Distill", "template": "Template"},
    ),
    Param(
        "distill_loss",
        Literal["kl", "sft"],
        "kl",
        label="Distill loss",
        help="distill: kl (per-token KL to the prompted teacher) or sft (on its answers)",
        allowed='"kl" (per-token KL to the prompted teacher) or "sft" (the teacher\'s answers as targets)',
        setting="distill_loss",
        only_when={"recipe": "distill"},
        choice_labels={"kl": "KL to the teacher", "sft": "SFT on teacher answers"},
    ),
    Param(
        "distill_prompts",
        int,
        32,
        label="Prompts written by the model",
        help="distill: prompts the base model writes with the skill in context, beside the skill's own",
        allowed="an integer from 0 to 512 (prompts the base model writes with the skill in context)",
        bounds={"ge": 0, "le": 512},
        setting="distill_prompts",
        only_when={"recipe": "distill"},
    ),
    Param(
        "teacher_max_new_tokens",
        int,
        128,
        label="Teacher answer tokens",
        help="distill: new tokens per teacher answer",
        allowed="an integer from 8 to 2048",
        bounds={"ge": 8, "le": 2048},
        setting="teacher_max_new_tokens",
        only_when={"recipe": "distill"},
    ),
    Param(
        "distill_top_k",
        int,
        64,
        label="KL top-k",
        help="distill kl: teacher tokens compared per position (0: the whole vocabulary)",
        allowed="an integer from 0 to 1024 (0: the full vocabulary)",
        group="advanced",
        bounds={"ge": 0, "le": 1024},
        setting="distill_top_k",
        only_when={"recipe": "distill"},
    ),
    Param(
        "teacher_temperature",
        float,
        0.0,
        label="Teacher temperature",
        help="distill: 0 answers greedily; above 0 samples (seeded) at this temperature",
        allowed="a number from 0 (greedy) to 2",
        group="advanced",
        bounds={"ge": 0, "le": 2},
        setting="teacher_temperature",
        only_when={"recipe": "distill"},
    ),
    Param(
        "init_adapter",
        str,
        None,
        label="Continue from job",
        help="Start from the final adapter of a succeeded job on the same base model",
        allowed="the job_id of a succeeded job trained on the same base model",
        group="advanced",
        constraints={"pattern": r"^train-[0-9a-f]{6,32}$"},
        example="train-0123456789ab",
        hyper=False,
    ),
    Param(
        "webhook_url",
        str,
        None,
        label="Webhook URL",
        help="POSTed (signed) when the job ends; docs/events.md",
        allowed="an http(s) URL of a public receiver",
        group="notify",
        constraints={"min_length": 1, "max_length": 2048},
        example="https://hooks.example.com/skill-adapter",
        cli=False,  # `train` runs no worker, and the worker delivers webhooks (docs/events.md)
        hyper=False,
    ),
    Param(
        "webhook_checkpoints",
        bool,
        False,
        label="Webhook on checkpoints",
        help="Also POST each saved checkpoint",
        allowed="true or false",
        group="notify",
        cli=False,  # `train` runs no worker, and the worker delivers webhooks (docs/events.md)
        hyper=False,
    ),
    Param(
        "report_to",
        Literal["none"] | list[Literal["tensorboard", "mlflow", "trackio"]],
        "none",
        label="Experiment trackers",
        help="Experiment trackers that receive the training metrics (none by default)",
        allowed='"none" or a list of trackers: "tensorboard", "mlflow", "trackio"',
        group="notify",
        choice_labels={"none": "None", "tensorboard": "TensorBoard", "mlflow": "MLflow", "trackio": "trackio"},
        hyper=False,
    ),
)

BY_NAME: dict[str, Param] = {param.name: param for param in PARAMS}

# The parameters every job's config records, resolved from the request over the settings.
HYPERPARAMETERS: tuple[str, ...] = tuple(param.name for param in PARAMS if param.hyper)


def request_fields() -> dict[str, Any]:
    """Field definitions of the request model (``pydantic.create_model``)."""
    return {param.name: param.request_field() for param in PARAMS}


def settings_fields() -> dict[str, Any]:
    """Field definitions of the settings the parameters have (``SKILL_ADAPTER_*``)."""
    return {param.setting: param.settings_field() for param in PARAMS if param.setting}


def configured_defaults(settings: Any) -> dict[str, Any]:
    """Every parameter's default on this server, in the request's form (``/api/config`` and job configs)."""
    return {
        param.name: param.from_setting(getattr(settings, param.setting)) if param.setting else param.default
        for param in PARAMS
    }


def param_specs(settings: Any = None) -> list[dict[str, Any]]:
    """The form's description of every parameter, with this server's defaults when ``settings`` is given."""
    defaults = configured_defaults(settings) if settings is not None else {}
    return [{**param.spec(), **({"default": defaults[param.name]} if defaults else {})} for param in PARAMS]


# ---- docs/parameters.md ---------------------------------------------------------------------------------------

DOCS_START = "<!-- parameters: generated by `uv run python -m skill_adapter.core.params docs/parameters.md` -->"
DOCS_END = "<!-- end of the generated parameters -->"


def markdown_table() -> str:
    """The table of every parameter that docs/parameters.md carries (a test checks it is current)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = [
        "| Request field | Variable | `train` flag | Default | Allowed | What it does |",
        "|---|---|---|---|---|---|",
    ]
    for param in PARAMS:
        variable = f"`SKILL_ADAPTER_{param.setting.upper()}`" if param.setting else "(per request)"
        flag = " / ".join(f"`{word}`" for word in _flag_forms(param)) if param.cli else "(API only)"
        rows.append(
            f"| `{param.name}` | {variable} | {flag} | `{param.shown_default()}` | {cell(param.allowed)} "
            f"| {cell(param.help)} |"
        )
    return "\n".join(rows)


def _flag_forms(param: Param) -> list[str]:
    if param.annotation is bool:
        return [param.flag_name, "--no-" + param.flag_name[2:]]
    return [param.flag_name]


def write_docs(path: str) -> None:
    """Replace the generated table in ``path`` (between its markers) with the current one."""
    from pathlib import Path

    file = Path(path)
    text = file.read_text(encoding="utf-8")
    head, rest = text.split(DOCS_START, 1)
    _, tail = rest.split(DOCS_END, 1)
    file.write_text(f"{head}{DOCS_START}\n{markdown_table()}\n{DOCS_END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    import sys

    write_docs(sys.argv[1] if len(sys.argv) > 1 else "docs/parameters.md")
