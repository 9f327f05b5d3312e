"""Telling warnings that are not ours apart in a terminal's output (used by the end-to-end tests)."""

from __future__ import annotations

import re

# What a warning that is not ours looks like in a terminal: a Python warning category ("FutureWarning: ..."),
# a WARNING record from a logger other than ours, and the known texts themselves.
FOREIGN = re.compile(
    r"\b[A-Z]\w*Warning\b|\bWARNING\b|deprecated|Failed to load|No hostname was supplied|superuser|Traceback"
)
# Seen in a fresh clone's output before the filters (2026-12): each must be caught.
NOISE_SEEN = [
    "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'. Please make sure you "
    "already `pip install kernels` and the kernels >= 0.11.1",
    "/x/transformers/modeling_utils.py:3312: FutureWarning: `is_gradient_checkpointing` is deprecated and will be "
    "removed in v6. Use `is_activation_checkpointing` instead.",
    "/x/celery/platforms.py:893: SecurityWarning: You're running the worker with superuser privileges: this is",
    "[2026-12-02 17:27:31,749: WARNING/MainProcess] No hostname was supplied. Reverting to default 'localhost'",
]


def foreign_lines(text: str) -> list[str]:
    """Lines (tqdm's carriage returns split too) that look like a warning and do not come from our loggers."""
    lines = re.split(r"[\r\n]+", text)
    return [line for line in lines if FOREIGN.search(line) and "skill_adapter" not in line]
