"""OpenAI's chat-completions request and error shapes (torch-free: the API and the model server share them)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

# Set by the API's /v1 for a caller who is not an admin: the model server then serves only that owner's adapters.
OWNER_HEADER = "x-skill-adapter-owner"

# OpenAI's error types by status (the official client maps the status to an exception class).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


def openai_error(
    status: int, code: str, message: str, *, param: str | None = None, retry_after: float | None = None
) -> JSONResponse:
    """``{"error": {"message", "type", "param", "code"}}``: OpenAI's shape, which also carries this
    project's ``code`` and ``message``."""
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
    kind = ERROR_TYPES.get(status, "server_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


class ServingError(Exception):
    """A request the model server refuses: becomes :func:`openai_error`."""

    def __init__(
        self, status: int, code: str, message: str, *, param: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param, self.retry_after = status, code, message, param, retry_after

    def response(self) -> JSONResponse:
        return openai_error(self.status, self.code, self.message, param=self.param, retry_after=self.retry_after)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text: a string, or the text parts of a content list."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ValueError("only text content parts are supported")
            parts.append(part["text"])
        return "".join(parts)


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The fields of OpenAI's ``POST /v1/chat/completions`` this server honours; others are ignored.

    ``with_skill`` is this project's extension: a job id or skill name whose SKILL.md becomes the system
    prompt (the dashboard's "base + SKILL.md" arm), answered by the base model."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=512)
    messages: list[ChatMessage] = Field(min_length=1, max_length=512)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    with_skill: str | None = Field(default=None, max_length=512)

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [s for s in ([self.stop] if isinstance(self.stop, str) else self.stop) if s]

    def limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class LoadLoraRequest(BaseModel):
    """vLLM's ``POST /v1/load_lora_adapter`` body; ``lora_path`` is optional here (a job knows its adapter)."""

    lora_name: str = Field(min_length=1, max_length=512)
    lora_path: str | None = None


class UnloadLoraRequest(BaseModel):
    lora_name: str = Field(min_length=1, max_length=512)
    lora_int_id: int | None = None


# ---- answers (what the model server sends; the API's /v1 declares them in its OpenAPI schema) -------------


class ServedModel(BaseModel):
    """One entry of ``GET /v1/models``: the base model (``parent`` null) or a succeeded job's adapter."""

    id: str = Field(description="the base model's name or the job id; what `model` takes")
    object: Literal["model"]
    created: int
    owned_by: str
    root: str
    parent: str | None = Field(description="an adapter's base model; null for the base model itself")
    loaded: bool
    max_model_len: int | None = Field(default=None, description="the base model's context (base model only)")
    skill: str | None = Field(default=None, description="an adapter's skill name")
    servable: bool | None = Field(default=None, description="false: the adapter was trained on another base model")


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ServedModel]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AnswerMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class CompletionChoice(BaseModel):
    index: int
    message: AnswerMessage
    logprobs: dict[str, Any] | None = Field(description='{"content": [token logprobs]} when asked for')
    finish_reason: str | None


class ChatCompletion(BaseModel):
    """``POST /v1/chat/completions`` without ``stream``. With ``stream: true`` the answer is server-sent events:
    one ``chat.completion.chunk`` per ``data:`` line (``choices[0].delta.content`` the new text; with
    ``stream_options.include_usage`` a last chunk carries ``usage``), then ``data: [DONE]``."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
