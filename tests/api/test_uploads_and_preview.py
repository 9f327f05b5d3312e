"""Multipart uploads on /api/training/start and /api/skills/preview, and their bad inputs."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from skill_adapter import crud
from skill_adapter.api.uploads import MAX_ARCHIVE, MAX_SKILL_MD
from skill_adapter.core.config import Settings
from skill_adapter.core.db import session_scope
from tests.helpers.api import SKILL, assert_error, upload

CHART = "# Temperatures\n\nGreen tea wants 80 C water. Black tea wants water just off the boil, 95 C.\n"


def zip_bytes(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def targz_bytes(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def stored_job(settings: Settings, job_id: str) -> Any:
    with session_scope(settings) as session:
        return crud.get_job(session=session, job_id=job_id)


def test_upload_skill_md_starts_a_job_with_form_parameters(
    client: Any, enqueued: list[str], settings: Settings, skills_root: Path
) -> None:
    before = sorted(p.name for p in skills_root.iterdir())
    resp = upload(client, "/api/training/start", "SKILL.md", SKILL.encode(), num_epochs=2, learning_rate="0.001")
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]
    assert enqueued == [job_id]
    job = stored_job(settings, job_id)
    assert job.config["num_epochs"] == 2 and job.config["learning_rate"] == 0.001
    assert job.config["batch_size"] == settings.batch_size
    stored = Path(job.skill_path)
    assert stored.read_text() == SKILL
    assert stored.is_relative_to(settings.checkpoint_dir.resolve() / job_id)
    assert sorted(p.name for p in skills_root.iterdir()) == before, "uploads never land in SKILLS_ROOT"


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "zip under another name"])
def test_upload_skill_folder_archive(client: Any, settings: Settings, kind: str) -> None:
    files = {"tea/SKILL.md": SKILL, "tea/references/chart.md": CHART}
    data = targz_bytes(files) if kind == "tar.gz" else zip_bytes(files)
    name = "tea.bin" if kind == "zip under another name" else f"tea.{kind}"  # the content decides
    resp = upload(client, "/api/training/start", name, data)
    assert resp.status_code == 202, resp.text
    job = stored_job(settings, resp.json()["job_id"])
    assert job.skill_name == "tea-brewing"
    assert (Path(job.skill_path).parent / "references" / "chart.md").read_text() == CHART


def test_preview_by_path_reports_skill_findings_stats_and_examples(client: Any) -> None:
    resp = client.post("/api/skills/preview", json={"skill_path": "commit-messages/SKILL.md"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["skill"]["name"] == "commit-messages"
    assert isinstance(body["findings"], list)
    stats = body["dataset_stats"]
    assert isinstance(stats["train_examples"], int) and stats["train_examples"] >= 10
    assert isinstance(stats["held_out_examples"], int) and stats["held_out_examples"] >= 1
    assert stats["tokens"]["exact"] is True
    assert set(stats["by_generator"]) == {"train", "held_out"}
    assert body["examples"] and {"prompt", "completion", "generator", "section", "split"} <= set(body["examples"][0])


def test_preview_upload_uses_reference_files_and_starts_no_job(client: Any, enqueued: list[str]) -> None:
    data = zip_bytes({"SKILL.md": SKILL, "references/chart.md": CHART})
    resp = upload(client, "/api/skills/preview", "tea.zip", data, max_seq_length=32)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (
        body["dataset_stats"]["by_generator"]["train"]["reference"]
        + body["dataset_stats"]["by_generator"]["held_out"]["reference"]
        >= 1
    )
    assert body["dataset_stats"]["over_max_seq_length"] > 0
    assert enqueued == []
    assert client.get("/api/training").json()["count"] == 0


def test_preview_and_start_agree_on_the_dataset(client: Any, settings: Settings) -> None:
    preview = upload(client, "/api/skills/preview", "SKILL.md", SKILL.encode()).json()
    job = upload(client, "/api/training/start", "SKILL.md", SKILL.encode()).json()
    assert preview["skill"]["name"] == stored_job(settings, job["job_id"]).skill_name


@pytest.mark.parametrize("url", ["/api/training/start", "/api/skills/preview"])
def test_oversized_uploads_get_413(client: Any, url: str) -> None:
    big_md = b"---\nname: x\ndescription: y\n---\n" + b"a" * MAX_SKILL_MD
    assert_error(upload(client, url, "SKILL.md", big_md), 413, "payload_too_large")
    big_zip = b"PK" + b"\x00" * (MAX_ARCHIVE + 100_000)
    assert_error(upload(client, url, "skill.zip", big_zip), 413, "payload_too_large")


@pytest.mark.parametrize("url", ["/api/training/start", "/api/skills/preview"])
def test_bad_uploads_get_clear_4xx(client: Any, url: str, settings: Settings) -> None:
    assert_error(upload(client, url, "SKILL.md", b"\x00\x01\x02" * 100), 422, "skill_invalid")
    assert_error(upload(client, url, "skill.zip", b"not a zip at all"), 422, "skill_invalid")
    assert_error(upload(client, url, "skill.zip", zip_bytes({"../evil/SKILL.md": SKILL})), 422, "skill_invalid")
    assert_error(upload(client, url, "skill.zip", zip_bytes({"README.md": "x"})), 422, "skill_invalid")
    # any name but an archive is read as a SKILL.md: the content decides (schema-valid names are accepted)
    error = assert_error(upload(client, url, "photo.png", b"\x89PNG\r\n\x1a\n\x00\x00"), 422, "invalid_parameter")
    assert "Cannot tell what 'photo.png' is: its content is a PNG image" in error["message"]
    error = assert_error(upload(client, url, "SKILL.md", b"%PDF-1.4 not a skill"), 422, "invalid_parameter")
    assert "a PDF document" in error["message"]
    resp = client.post(url, data={"num_epochs": "2"}, files={"other": ("x.md", SKILL.encode())})
    assert_error(resp, 422, "invalid_parameter")
    error = assert_error(upload(client, url, "SKILL.md", SKILL.encode(), seed="minus one"), 422, "invalid_parameter")
    assert "seed" in error["message"]
    assert_error(upload(client, url, "SKILL.md", SKILL.encode(), skill_path="x"), 422, "invalid_parameter")
    assert client.get("/api/training").json()["count"] == 0
    jobs_dir = settings.checkpoint_dir.resolve()
    assert not jobs_dir.exists() or not any(jobs_dir.iterdir()), "a refused upload leaves nothing behind"


def test_bad_upload_parameters_on_start(client: Any) -> None:
    for field, value in [("num_epochs", "0"), ("learning_rate", "2"), ("lora_dropout", "1"), ("quant_bits", "5")]:
        resp = upload(client, "/api/training/start", "SKILL.md", SKILL.encode(), **{field: value})
        error = assert_error(resp, 422, "invalid_parameter")
        assert field in error["message"]


def test_preview_bad_json_and_paths(client: Any) -> None:
    resp = client.post("/api/skills/preview", content=b"{oops", headers={"content-type": "application/json"})
    assert_error(resp, 400, "invalid_json")
    assert_error(client.post("/api/skills/preview", json={}), 422, "invalid_parameter")
    assert_error(client.post("/api/skills/preview", json={"skill_path": "../../etc/passwd"}), 403, "path_outside_root")
    assert_error(client.post("/api/skills/preview", json={"skill_path": "nope/SKILL.md"}), 404, "skill_not_found")


def test_uploads_land_in_a_folder_named_like_the_skill(client: Any, settings: Settings) -> None:
    """An uploaded SKILL.md is compared with its own name, an archive with its file name: no false mismatch."""
    named = SKILL.replace("name: tea-brewing", "name: Tea Brewing!")
    cases = [
        ("SKILL.md", SKILL.encode(), "tea-brewing"),
        ("SKILL.md", named.encode(), "tea-brewing"),  # slugged; the name itself gets its own finding
        ("tea-brewing.zip", zip_bytes({"SKILL.md": SKILL}), "tea-brewing"),
        ("tea.tar.gz", targz_bytes({"tea/SKILL.md": SKILL}), "tea"),
    ]
    for filename, data, folder in cases:
        job = stored_job(settings, upload(client, "/api/training/start", filename, data).json()["job_id"])
        assert Path(job.skill_path).parent.name == folder, filename
    preview = upload(client, "/api/skills/preview", "SKILL.md", SKILL.encode()).json()
    assert "name_mismatch" not in {f["code"] for f in preview["findings"]}
    preview = upload(client, "/api/skills/preview", "other-name.zip", zip_bytes({"SKILL.md": SKILL})).json()
    assert "name_mismatch" in {f["code"] for f in preview["findings"]}, "a real mismatch is still reported"


def test_preview_samples_every_generator(client: Any) -> None:
    body = client.post("/api/skills/preview", json={"skill_path": "commit-messages/SKILL.md"}).json()
    present = {name for name, count in body["dataset_stats"]["by_generator"]["train"].items() if count}
    sampled = {e["generator"] for e in body["examples"] if e["split"] == "train"}
    assert len(present) >= 3 and sampled == present
    assert {e["split"] for e in body["examples"]} == {"train", "held_out"}
