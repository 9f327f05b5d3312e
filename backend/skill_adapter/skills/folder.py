"""Load a skill from disk (a SKILL.md or its folder) and unpack uploaded skill archives safely.

Files under ``scripts/`` are read as text for training material and are never executed.
"""

from __future__ import annotations

import io
import os
import re
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import IO

from skill_adapter.core.errors import SkillNotFoundError, SkillParseError
from skill_adapter.skills.model import Finding, Reference, Skill
from skill_adapter.skills.parser import MAX_BYTES, parse_skill

MAX_REFERENCE_BYTES = 200 * 1024
MAX_REFERENCES_TOTAL = 2 * 1024 * 1024
MAX_EXTRA_FILES = 200
_CHUNK = 64 * 1024
_SCAN_FOLDERS = ("references", "scripts")


def load_skill_path(path: Path) -> Skill:
    """Parse ``path`` (a SKILL.md, or a folder holding one) and attach the files it references."""
    path = Path(path)
    target = path / "SKILL.md" if path.is_dir() else path
    if not target.is_file():
        raise SkillNotFoundError(f"no SKILL.md in the folder {path.name!r}")
    try:
        with target.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as err:
        raise SkillNotFoundError(f"cannot read the SKILL.md in {target.parent.name!r}: {err.strerror}") from None
    folder = target.parent.resolve()  # once: each resolve is a system call per path component
    skill = parse_skill(data, source=str(target), folder_name=folder.name)
    attach_references(skill, folder)
    return skill


def _inside(root: Path, candidate: Path) -> Path | None:
    """The resolved candidate if it stays inside root (symlinks followed), else None."""
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError):
        return None
    return resolved if resolved == root or resolved.is_relative_to(root) else None


def _read_text(path: Path, budget: int) -> str | None:
    """Up to ``budget`` bytes of a text file decoded as UTF-8 (errors replaced); None for binary files."""
    try:
        with path.open("rb") as fh:
            data = fh.read(min(budget, MAX_REFERENCE_BYTES))
    except OSError:
        return None
    if b"\x00" in data[:8192]:
        return None
    return data.decode("utf-8", "replace")


def attach_references(skill: Skill, folder: Path) -> None:
    """Resolve every Reference inside ``folder``; read text files within the caps; add unmentioned files."""
    root = Path(folder).resolve()
    budget = MAX_REFERENCES_TOTAL
    capped = False

    def fill(ref: Reference) -> None:
        nonlocal budget, capped
        resolved = _inside(root, root / ref.path)
        if resolved is None:
            ref.exists = False
            skill.findings.append(Finding("reference_outside", f"{ref.path} leads outside the skill folder", ref.line))
            return
        ref.exists = resolved.exists()
        if not resolved.is_file():
            return
        if budget <= 0:
            if not capped:
                skill.findings.append(
                    Finding("references_capped", f"referenced files past {MAX_REFERENCES_TOTAL} bytes were not read")
                )
                capped = True
            return
        ref.text = _read_text(resolved, budget)
        if ref.text is not None:
            budget -= len(ref.text.encode("utf-8"))

    for ref in skill.references:
        fill(ref)

    known = {ref.path for ref in skill.references}
    added = 0
    for sub in _SCAN_FOLDERS:
        base = root / sub
        if base.is_symlink() or not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            dirnames.sort()
            for filename in sorted(filenames):
                if added >= MAX_EXTRA_FILES:
                    return
                full = Path(dirpath) / filename
                rel = full.relative_to(root).as_posix()
                if rel in known or filename.startswith("."):
                    continue
                ref = Reference(path=rel, kind=sub, line=0)  # type: ignore[arg-type]
                fill(ref)
                skill.references.append(ref)
                known.add(rel)
                added += 1


# ----------------------------------------------------------------------------------------------- archives

_DRIVE_RE = re.compile(r"^[A-Za-z]:")


def _member_parts(name: str) -> list[str]:
    if name.startswith(("/", "\\")) or _DRIVE_RE.match(name):
        raise SkillParseError(f"archive member {name[:200]!r} has an absolute path", reason="unsafe_archive")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SkillParseError(f"archive member {name[:200]!r} leaves the folder", reason="unsafe_archive")
    if any("\x00" in p for p in parts):
        raise SkillParseError("archive member name contains a NUL byte", reason="unsafe_archive")
    return parts


class _Writer:
    def __init__(self, dest: Path, max_members: int, max_total_bytes: int) -> None:
        self.dest = dest
        self.root = dest.resolve()
        self.max_members = max_members
        self.max_total = max_total_bytes
        self.members = 0
        self.total = 0

    def count(self) -> None:
        self.members += 1
        if self.members > self.max_members:
            raise SkillParseError(f"archive has more than {self.max_members} members", reason="archive_too_large")

    def target(self, parts: list[str]) -> Path:
        target = self.root.joinpath(*parts)
        if _inside(self.root, target.parent) is None:
            raise SkillParseError(
                f"archive member {'/'.join(parts)[:200]!r} leaves the folder", reason="unsafe_archive"
            )
        return target

    def mkdir(self, parts: list[str]) -> None:
        if parts:
            self.target(parts).mkdir(parents=True, exist_ok=True)

    def write(self, parts: list[str], src: IO[bytes]) -> None:
        if not parts:
            return
        target = self.target(parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            raise SkillParseError(f"archive member {target.name!r} overwrites a link", reason="unsafe_archive")
        with target.open("wb") as out:
            while True:
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
                self.total += len(chunk)
                if self.total > self.max_total:
                    raise SkillParseError(
                        f"archive expands to more than {self.max_total} bytes", reason="archive_too_large"
                    )
                out.write(chunk)


def _extract_zip(data: bytes, writer: _Writer) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        if len(infos) > writer.max_members:
            raise SkillParseError(f"archive has more than {writer.max_members} members", reason="archive_too_large")
        for info in infos:
            writer.count()
            parts = _member_parts(info.filename)
            mode = info.external_attr >> 16
            kind = stat.S_IFMT(mode)
            if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                raise SkillParseError(
                    f"archive member {info.filename[:200]!r} is a link or device", reason="unsafe_archive"
                )
            if info.is_dir():
                writer.mkdir(parts)
                continue
            with zf.open(info) as src:
                writer.write(parts, src)


def _extract_tar(data: bytes, writer: _Writer) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        for member in tf:
            writer.count()
            parts = _member_parts(member.name)
            if member.isdir():
                writer.mkdir(parts)
            elif member.isfile():
                src = tf.extractfile(member)
                if src is None:
                    raise SkillParseError(f"archive member {member.name[:200]!r} is unreadable", reason="bad_archive")
                with src:
                    writer.write(parts, src)
            else:
                raise SkillParseError(
                    f"archive member {member.name[:200]!r} is a link, device or special file", reason="unsafe_archive"
                )


def _skill_root(dest: Path) -> Path:
    if (dest / "SKILL.md").is_file():
        return dest
    candidates = [
        child
        for child in sorted(dest.iterdir())
        if child.is_dir() and not child.is_symlink() and not child.name.startswith((".", "__MACOSX"))
    ]
    with_skill = [c for c in candidates if (c / "SKILL.md").is_file()]
    if len(with_skill) == 1:
        return with_skill[0]
    if len(with_skill) > 1:
        raise SkillParseError("archive holds more than one skill folder", reason="no_skill_md")
    raise SkillParseError("archive has no SKILL.md at its root or in a single top-level folder", reason="no_skill_md")


def extract_archive(
    data: bytes, filename: str, dest: Path, *, max_members: int = 500, max_total_bytes: int = 50_000_000
) -> Path:
    """Unpack a ``.zip`` or ``.tar.gz``/``.tgz`` skill into ``dest`` and return the folder holding SKILL.md.

    Refuses absolute paths, ``..``, links and devices (``unsafe_archive``), too many members or bytes
    (``archive_too_large``, counted while extracting) and corrupt archives (``bad_archive``).
    """
    lower = filename.lower()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    writer = _Writer(dest, max_members, max_total_bytes)
    try:
        if lower.endswith(".zip"):
            _extract_zip(data, writer)
        elif lower.endswith((".tar.gz", ".tgz")):
            _extract_tar(data, writer)
        else:
            raise SkillParseError(
                f"unsupported archive {filename[:200]!r}: use .zip, .tar.gz or .tgz", reason="bad_archive"
            )
    except SkillParseError:
        raise
    except Exception as err:  # zipfile/tarfile/zlib raise many types for corrupt input
        # An OSError's text names the server's extraction folder: say only what went wrong.
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise SkillParseError(f"archive is corrupt or unreadable: {reason}", reason="bad_archive") from None
    return _skill_root(writer.root)
