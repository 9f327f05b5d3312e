"""Schemathesis over every operation of the real app (SQLite, the real routes): no server error, and every
answer is declared by the schema and matches it; then stateful runs along the schema's links (start ->
status, logs, metrics, evaluate, cancel). Bounded and derandomised, so CI stays short and stable."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from skill_adapter.api.main import create_app
from skill_adapter.core.config import Settings

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 20
QUIET = {"deadline": None, "database": None, "derandomize": True, "suppress_health_check": list(HealthCheck)}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    root = tmp_path_factory.mktemp("schemathesis")
    shutil.copytree(Path(__file__).resolve().parents[2] / "skills", root / "skills")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        model="tiny",
        data_dir=root / "data",
        checkpoint_dir=root / "checkpoints",
        skills_root=root / "skills",
        allowed_hosts="localhost,127.0.0.1,::1,testserver",
    )
    application = create_app(settings, enqueue=lambda job_id: None, run_sweeper=False, dashboard=root / "none")
    with TestClient(application):  # runs the lifespan: the database is created
        yield application


@pytest.fixture(scope="module")
def api_schema(app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def operations(api_schema: Any) -> list[Any]:
    found = [result.ok() for result in api_schema.get_all_operations()]
    assert len(found) >= 12, [op.label for op in found]
    return found


def test_every_operation_conforms(api_schema: Any) -> None:
    for operation in operations(api_schema):

        @given(case=operation.as_strategy())
        @hsettings(max_examples=EXAMPLES_PER_OPERATION, phases=[Phase.explicit, Phase.generate], **QUIET)
        def run(case: Any) -> None:
            # /v1 forwards to a model server, which this app has none of: 503 model_server_not_configured is
            # its documented answer there (issue 14), so only that prefix may answer a 5xx.
            v1 = case.operation.path.startswith("/v1/")
            case.call_and_validate(checks=[c for c in CHECKS if not (v1 and c is not_a_server_error)])

        run()


def test_unsupported_methods_answer_405_with_allow(api_schema: Any) -> None:
    for operation in operations(api_schema):

        @given(case=operation.as_strategy())
        @hsettings(max_examples=1, phases=[Phase.generate], **QUIET)
        def run(case: Any) -> None:
            unsupported_method(case.operation.schema.config, case.call(), case)

        run()


def test_stateful_links(api_schema: Any) -> None:
    """Sequences that follow the links from a new job (start -> status, logs, metrics, evaluate, cancel).

    Positive-data acceptance is not among the checks: a schema-valid upload may still hold a SKILL.md that is
    not a skill, which the API refuses with a 422 on purpose."""
    base = api_schema.as_state_machine()

    class Machine(base):  # type: ignore[misc, valid-type]
        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    Machine.run(settings=hsettings(max_examples=15, stateful_step_count=6, **QUIET))
