"""GET /api/skills: the SKILL.md files under the skills root, for the dashboard's picker."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi.testclient import TestClient


def test_list_skills(client: TestClient, skills_root: Path) -> None:
    response = client.get("/api/skills")
    assert response.status_code == 200
    body = response.json()
    paths = [entry["path"] for entry in body["data"]]
    assert "commit-messages/SKILL.md" in paths
    assert paths == sorted(paths)
    assert body["count"] == len(paths)
    entry = next(e for e in body["data"] if e["path"] == "commit-messages/SKILL.md")
    assert entry["name"] == "commit-messages"
    # every listed path is accepted by the preview as it is
    assert client.post("/api/skills/preview", json={"skill_path": paths[0]}).status_code == 200


def test_list_skills_stays_inside_root(client: TestClient, skills_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "SKILL.md").write_text("---\nname: secret\ndescription: x\n---\nbody\n")
    os.symlink(outside, skills_root / "escape")
    (skills_root / ".hidden").mkdir()
    (skills_root / ".hidden" / "SKILL.md").write_text("---\nname: hidden\ndescription: x\n---\n")
    paths = [entry["path"] for entry in client.get("/api/skills").json()["data"]]
    assert not any(p.startswith(("escape/", ".hidden/")) for p in paths)
