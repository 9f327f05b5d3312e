"""A migrated SQLite database copied for a test, instead of migrating a new one each time."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from skill_adapter.core.config import Settings


def copy_database(source: Path, settings: Settings) -> None:
    """Copy the SQLite database ``source`` to where ``settings`` keep theirs, unless one is already there.

    SQLite's backup API, not a file copy: the service runs SQLite in WAL mode, where recent pages live in the
    ``-wal`` file beside the database until a checkpoint."""
    target = settings.data_dir / "skill-adapter.db"
    if target.exists():
        return
    settings.prepare_dirs()
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
