"""Write the API's OpenAPI schema to a file: ``python -m skill_adapter.api.openapi_dump frontend/openapi.json``.

The dashboard's TypeScript types are generated from that file (``cd frontend && npm run gen:types`` runs both
steps); ``tests/api/test_openapi_dump.py`` fails when the committed copies are stale, and
``tests/api/test_openapi_responses.py`` when a JSON answer has no declared schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def openapi_schema() -> dict[str, Any]:
    """The schema as the served app has it; built without a database, a broker or the configured variables."""
    from skill_adapter.api.main import create_app
    from skill_adapter.core.config import Settings

    settings = Settings(_env_file=None, model="tiny")  # type: ignore[call-arg]
    app = create_app(settings, enqueue=lambda _job_id: None, run_sweeper=False)
    return app.openapi()


def openapi_text() -> str:
    return json.dumps(openapi_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m skill_adapter.api.openapi_dump OUT.json", file=sys.stderr)
        return 2
    Path(args[0]).write_text(openapi_text(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
