"""load_skill_path reads referenced files (never runs them); extract_archive refuses unsafe archives."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from skill_adapter.core.errors import SkillNotFoundError, SkillParseError
from skill_adapter.skills import load_skill_path
from skill_adapter.skills.folder import extract_archive

SKILL_MD = """---
name: demo-skill
description: A demo skill for tests.
---
# Demo

Read [the guide](references/guide.md) then run `scripts/run.sh`.
Missing: references/missing.md. Logo: assets/logo.png
"""


def make_skill(root: Path, name: str = "demo-skill") -> Path:
    folder = root / name
    (folder / "references").mkdir(parents=True)
    (folder / "scripts").mkdir()
    (folder / "assets").mkdir()
    (folder / "SKILL.md").write_text(SKILL_MD, encoding="utf-8")
    (folder / "references" / "guide.md").write_text("# Guide\nUse it well.\n", encoding="utf-8")
    (folder / "references" / "extra.md").write_text("Extra notes.\n", encoding="utf-8")
    (folder / "scripts" / "run.sh").write_text("#!/bin/sh\ntouch /tmp/should-never-exist\n", encoding="utf-8")
    (folder / "assets" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    return folder


def test_load_folder_reads_references(tmp_path: Path) -> None:
    folder = make_skill(tmp_path)
    skill = load_skill_path(folder)
    assert skill.name == "demo-skill"
    assert skill.source == str(folder / "SKILL.md")
    refs = {r.path: r for r in skill.references}
    assert refs["references/guide.md"].text == "# Guide\nUse it well.\n"
    assert refs["references/guide.md"].exists is True
    assert refs["references/guide.md"].line == 7
    assert refs["scripts/run.sh"].text is not None and "touch" in refs["scripts/run.sh"].text
    assert refs["references/missing.md"].exists is False
    assert refs["assets/logo.png"].exists is True
    assert refs["assets/logo.png"].text is None
    assert refs["references/extra.md"].line == 0
    assert refs["references/extra.md"].text == "Extra notes.\n"
    assert [f.code for f in skill.findings] == []
    # same result from the SKILL.md path itself
    assert load_skill_path(folder / "SKILL.md").name == "demo-skill"


def test_not_found(tmp_path: Path) -> None:
    with pytest.raises(SkillNotFoundError):
        load_skill_path(tmp_path / "nope" / "SKILL.md")
    with pytest.raises(SkillNotFoundError):
        load_skill_path(tmp_path)


def test_too_large_file(tmp_path: Path) -> None:
    (tmp_path / "SKILL.md").write_bytes(b"a" * (2 * 1024 * 1024))
    with pytest.raises(SkillParseError) as info:
        load_skill_path(tmp_path / "SKILL.md")
    assert info.value.reason == "too_large"


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlink_escape_refused(tmp_path: Path) -> None:
    folder = make_skill(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret", encoding="utf-8")
    (folder / "references" / "guide.md").unlink()
    os.symlink(secret, folder / "references" / "guide.md")
    os.symlink(secret, folder / "scripts" / "leak.txt")
    skill = load_skill_path(folder)
    refs = {r.path: r for r in skill.references}
    for path in ("references/guide.md", "scripts/leak.txt"):
        assert refs[path].exists is False
        assert refs[path].text is None
    assert [f.code for f in skill.findings].count("reference_outside") == 2
    assert all("top secret" not in (r.text or "") for r in skill.references)


# ------------------------------------------------------------------------------------------------- archives


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_bytes(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tf.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tf.addfile(info, io.BytesIO(member[1]))
    return buf.getvalue()


def reason(data: bytes, filename: str, dest: Path, **kwargs) -> str:
    with pytest.raises(SkillParseError) as info:
        extract_archive(data, filename, dest, **kwargs)
    return info.value.reason


def test_zip_extracts_single_folder(tmp_path: Path) -> None:
    data = zip_bytes({"demo/SKILL.md": SKILL_MD.encode(), "demo/references/guide.md": b"guide"})
    root = extract_archive(data, "demo.zip", tmp_path / "out")
    assert root.name == "demo"
    assert (root / "references" / "guide.md").read_bytes() == b"guide"
    assert load_skill_path(root).name == "demo-skill"


def test_tar_gz_extracts_root(tmp_path: Path) -> None:
    data = tar_bytes([("SKILL.md", SKILL_MD.encode()), ("scripts/run.sh", b"echo hi")])
    root = extract_archive(data, "demo.tar.gz", tmp_path / "out")
    assert (root / "SKILL.md").is_file()
    assert extract_archive(data, "demo.TGZ", tmp_path / "out2").joinpath("scripts", "run.sh").read_bytes() == b"echo hi"


def test_zip_slip_and_absolute_refused(tmp_path: Path) -> None:
    assert reason(zip_bytes({"SKILL.md": b"x", "../evil": b"x"}), "a.zip", tmp_path / "o1") == "unsafe_archive"
    assert reason(zip_bytes({"/etc/evil": b"x"}), "a.zip", tmp_path / "o2") == "unsafe_archive"
    assert reason(tar_bytes([("a/../../evil", b"x")]), "a.tgz", tmp_path / "o3") == "unsafe_archive"
    assert reason(tar_bytes([("/abs/evil", b"x")]), "a.tar.gz", tmp_path / "o4") == "unsafe_archive"
    assert not (tmp_path / "evil").exists()


def test_link_members_refused(tmp_path: Path) -> None:
    sym = tarfile.TarInfo("SKILL.md")
    sym.type = tarfile.SYMTYPE
    sym.linkname = "/etc/passwd"
    assert reason(tar_bytes([sym]), "a.tgz", tmp_path / "o1") == "unsafe_archive"
    hard = tarfile.TarInfo("x")
    hard.type = tarfile.LNKTYPE
    hard.linkname = "SKILL.md"
    assert reason(tar_bytes([("SKILL.md", b"x"), hard]), "a.tgz", tmp_path / "o2") == "unsafe_archive"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    assert reason(buf.getvalue(), "a.zip", tmp_path / "o3") == "unsafe_archive"


def test_archive_caps(tmp_path: Path) -> None:
    many = {f"f{i}.txt": b"x" for i in range(20)}
    assert reason(zip_bytes(many), "a.zip", tmp_path / "o1", max_members=10) == "archive_too_large"
    assert reason(tar_bytes(list(many.items())), "a.tgz", tmp_path / "o2", max_members=10) == "archive_too_large"
    big = {"SKILL.md": b"\0" * 5_000_000}
    assert reason(zip_bytes(big), "a.zip", tmp_path / "o3", max_total_bytes=1_000_000) == "archive_too_large"
    assert (
        reason(tar_bytes(list(big.items())), "a.tgz", tmp_path / "o4", max_total_bytes=1_000_000) == "archive_too_large"
    )


def test_bad_archive_and_missing_skill(tmp_path: Path) -> None:
    assert reason(b"not a zip at all", "a.zip", tmp_path / "o1") == "bad_archive"
    assert reason(b"\x1f\x8b garbage", "a.tar.gz", tmp_path / "o2") == "bad_archive"
    assert reason(b"whatever", "a.rar", tmp_path / "o3") == "bad_archive"
    assert reason(zip_bytes({"readme.txt": b"x"}), "a.zip", tmp_path / "o4") == "no_skill_md"
    two = zip_bytes({"a/SKILL.md": b"x", "b/SKILL.md": b"y"})
    assert reason(two, "a.zip", tmp_path / "o5") == "no_skill_md"
