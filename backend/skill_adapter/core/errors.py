"""Domain errors.

Every error the service can report to a person carries a machine-readable ``code`` and an HTTP status.
Routes and the pipeline map them in one place each (``api/errors.py`` and ``pipeline.py``).
"""

from __future__ import annotations

from typing import Any


class SkillAdapterError(Exception):
    """Base class: ``code`` is machine-readable, ``str(err)`` is the message a person reads."""

    code: str = "internal_error"
    status_code: int = 500

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The ``{"code", "message", ...details}`` body used by the API and stored on failed jobs."""
        return {"code": self.code, "message": self.message, **self.details}


class InvalidParameterError(SkillAdapterError, ValueError):
    code = "invalid_parameter"
    status_code = 422


class InvalidJSONError(SkillAdapterError, ValueError):
    code = "invalid_json"
    status_code = 400


class SkillNotFoundError(SkillAdapterError, FileNotFoundError):
    code = "skill_not_found"
    status_code = 404


class PathOutsideRootError(SkillAdapterError, PermissionError):
    code = "path_outside_root"
    status_code = 403


class SkillParseError(SkillAdapterError, ValueError):
    """A SKILL.md that cannot be recovered.

    ``reason`` says why (``binary_content``, ``not_utf8``, ``no_frontmatter_or_body``,
    ``frontmatter_not_mapping``, ``missing_description``, ``hostile_yaml``, ``too_large`` …) and ``line``
    is the 1-based line where the problem was seen, when there is one.
    """

    code = "skill_invalid"
    status_code = 422

    def __init__(self, message: str, *, reason: str, line: int | None = None) -> None:
        super().__init__(message, reason=reason, line=line)
        self.reason = reason
        self.line = line


class PayloadTooLargeError(SkillAdapterError):
    code = "payload_too_large"
    status_code = 413


class JobNotFoundError(SkillAdapterError, LookupError):
    code = "job_not_found"
    status_code = 404


class EvaluationNotFoundError(SkillAdapterError, LookupError):
    code = "evaluation_not_found"
    status_code = 404


class JobStateError(SkillAdapterError):
    """The job is in a state that does not allow the request (e.g. cancelling a finished job)."""

    code = "job_state_conflict"
    status_code = 409


class DatasetError(SkillAdapterError):
    """The skill parsed but yields no usable training set."""

    code = "dataset_empty"
    status_code = 422


class EvaluationError(SkillAdapterError):
    """An evaluation that cannot run (e.g. an adapter whose weights are not safetensors)."""

    code = "evaluation_failed"
    status_code = 422


class TrainingError(SkillAdapterError):
    code = "training_failed"
    status_code = 500


class ServiceUnavailableError(SkillAdapterError):
    code = "service_unavailable"
    status_code = 503
