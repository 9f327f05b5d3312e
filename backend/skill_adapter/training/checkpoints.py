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


def non_finite_tensors(folder: Path) -> list[str]:
    """Names of the tensors in ``folder``'s adapter weights that hold a NaN or an infinity."""
    import torch
    from safetensors.torch import load_file

    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        return []
    return [name for name, tensor in load_file(str(weights)).items() if not bool(torch.isfinite(tensor).all())]


def prune_checkpoints(output_dir: Path, *, keep: int, protect: Path | None = None) -> list[Path]:
    """Delete all but the newest ``keep`` complete ``checkpoint-N`` folders (``final`` is never touched).

    ``protect`` (the checkpoint a run resumed from) and incomplete folders newer than the newest complete
    one (a save in progress) are left alone; torn folders older than a complete one are removed.
    Returns the folders removed.
    """
    import shutil

    if not output_dir.is_dir():
        return []
    folders = sorted(
        (
            (step, folder)
            for folder in output_dir.iterdir()
            if folder.is_dir() and (step := checkpoint_step(folder)) is not None
        ),
        reverse=True,
    )
    complete = [(step, folder) for step, folder in folders if is_complete(folder)]
    kept = {folder for _, folder in complete[: max(keep, 1)]}
    newest_complete = complete[0][0] if complete else None
    removed = []
    for step, folder in folders:
        if folder in kept or (protect is not None and folder.resolve() == protect.resolve()):
            continue
        if newest_complete is None or step > newest_complete:
            continue  # being written now, or nothing complete yet to fall back on
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


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
