"""The dashboard's API types are generated from the OpenAPI schema (``cd frontend && npm run gen:types``);
these tests fail when the committed schema or the types generated from it are stale."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from skill_adapter.api.openapi_dump import main, openapi_text

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
GENERATOR = FRONTEND / "node_modules" / ".bin" / "openapi-typescript"
REGENERATE = "regenerate them: cd frontend && npm run gen:types"


def test_committed_openapi_schema_is_current() -> None:
    committed = (FRONTEND / "openapi.json").read_text(encoding="utf-8")
    assert committed == openapi_text(), f"frontend/openapi.json is stale; {REGENERATE}"


def test_committed_typescript_types_are_generated_from_the_current_schema(tmp_path: Path) -> None:
    if shutil.which("node") is None or not GENERATOR.exists():
        if os.environ.get("SKILL_ADAPTER_REQUIRE_BROWSER"):  # CI: Node.js and `npm ci` are there
            pytest.fail(f"Node.js or {GENERATOR} is missing (cd frontend && npm ci)")
        pytest.skip("Node.js or the frontend's packages are not installed (cd frontend && npm ci)")
    schema = tmp_path / "openapi.json"
    assert main([str(schema)]) == 0
    out = tmp_path / "schema.ts"
    subprocess.run([str(GENERATOR), str(schema), "--output", str(out)], check=True, capture_output=True, timeout=120)
    committed = (FRONTEND / "src" / "api" / "schema.ts").read_text(encoding="utf-8")
    assert committed == out.read_text(encoding="utf-8"), f"frontend/src/api/schema.ts is stale; {REGENERATE}"


def test_dump_needs_one_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err
