"""Checkpoint folders and their completion markers.

Hugging Face Trainer's checkpoint saves are not atomic, so a folder counts as complete only when the
marker, written after everything else in it, is there. Resume uses the newest complete one.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

MARKER = "COMPLETE"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def mark_complete(folder: Path, *, step: int) -> None:
    """Write the marker last, atomically (write to a temporary name, fsync, rename)."""
    tmp = folder / f".{MARKER}.tmp"
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump({"step": step, "completed_at": time.time()}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(folder / MARKER)


def is_complete(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def checkpoint_step(folder: Path) -> int | None:
    match = _CHECKPOINT_RE.match(folder.name)
    return int(match.group(1)) if match else None


def latest_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest ``checkpoint-N`` folder in ``output_dir`` whose marker is present; torn ones are skipped."""
    if not output_dir.is_dir():
        return None
    candidates = [
        (step, folder)
        for folder in output_dir.iterdir()
        if folder.is_dir() and (step := checkpoint_step(folder)) is not None and is_complete(folder)
    ]
    return max(candidates)[1] if candidates else None
