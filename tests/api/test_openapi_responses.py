"""Every JSON answer of the API is declared in its OpenAPI schema (the dashboard's types are generated from
it), and the answers that FastAPI does not validate on the way out match what they declare."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from skill_adapter.api.openapi_dump import openapi_schema
from skill_adapter.schemas import HealthPublic

# Operations whose success answer is not JSON, with the reason. Nothing else may leave its answer undeclared.
NOT_JSON: dict[tuple[str, str], str] = {
    ("post", "/v1/load_lora_adapter"): "vLLM's admin call answers a sentence in plain text",
    ("post", "/v1/unload_lora_adapter"): "vLLM's admin call answers a sentence in plain text",
}


def _undeclared(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    """A schema that says nothing about its object: empty, or a free-form object without properties."""
    if "$ref" in schema:
        return _undeclared(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    if "anyOf" in schema or "oneOf" in schema:
        return any(_undeclared(part, components) for part in schema.get("anyOf", schema.get("oneOf", [])))
    return not schema.get("properties") and schema.get("type") not in ("array", "string", "integer", "number")


def test_every_json_answer_has_a_declared_schema() -> None:
    spec = openapi_schema()
    components = spec["components"]["schemas"]
    missing, seen = [], set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            seen.add((method, path))
            for status, answer in operation["responses"].items():
                if not status.startswith("2"):
                    continue
                content = answer.get("content", {})
                if (method, path) in NOT_JSON:
                    assert "application/json" not in content, f"{method} {path} is listed as not JSON"
                    continue
                json_schema = content.get("application/json", {}).get("schema")
                if json_schema is None or _undeclared(json_schema, components):
                    missing.append(f"{method.upper()} {path} {status}")
    assert not missing, f"JSON answers without a response model: {missing}"
    assert set(NOT_JSON) <= seen, "NOT_JSON names an operation that no longer exists"
    assert any(path.startswith("/api/") for _, path in seen)


def test_the_check_finds_a_free_form_answer() -> None:
    components = {"Free": {"type": "object", "additionalProperties": True}, "Typed": {"properties": {"a": {}}}}
    assert _undeclared({}, components)
    assert _undeclared({"$ref": "#/components/schemas/Free"}, components)
    assert _undeclared({"anyOf": [{"$ref": "#/components/schemas/Typed"}, {}]}, components)
    assert not _undeclared({"$ref": "#/components/schemas/Typed"}, components)


def test_health_answers_match_their_declared_schema(client: TestClient) -> None:
    """/api/health answers its report as built (no response validation): the model must describe it."""
    body = client.get("/api/health").json()
    parsed = HealthPublic.model_validate(body)
    assert parsed.model_dump(exclude_unset=True, mode="json") == body


# Operations that take no request body, with the reason. Every other POST declares the schema of its body.
NO_BODY: dict[tuple[str, str], str] = {
    ("post", "/api/training/{job_id}/cancel"): "the path names what to cancel",
    ("post", "/api/training/{job_id}/evaluations/{evaluation_id}/cancel"): "the path names what to cancel",
}


def test_every_request_body_has_a_declared_schema() -> None:
    """The /v1 routes forward their bodies unparsed; their schemas are declared all the same (the dashboard's
    chat request type is generated from it)."""
    spec = openapi_schema()
    components = spec["components"]["schemas"]
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method not in ("post", "put", "patch") or (method, path) in NO_BODY:
                continue
            content = operation.get("requestBody", {}).get("content", {})
            declared = [c["schema"] for c in content.values() if "schema" in c]
            if not declared or any(_undeclared(schema, components) for schema in declared):
                missing.append(f"{method.upper()} {path}")
    assert not missing, f"request bodies without a schema: {missing}"
    chat = components["ChatCompletionRequest"]
    assert {"model", "messages", "with_skill", "stream"} <= set(chat["properties"]) and "ChatMessage" in components
