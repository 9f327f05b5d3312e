"""Experiment trackers a job reports to (``report_to``): TensorBoard, MLflow, trackio.

The Trainer's own integrations do the logging; this module only names the run after the job, tags it with
the skill and points each tracker at a local store unless the operator configured one. It runs in the
training process (a fresh one per job), so the environment variables it sets concern that job alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

TRACKERS = ("tensorboard", "mlflow", "trackio")
# The package each tracker needs (the project's optional extras of the same names install them).
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "trackio": "trackio"}


def mlflow_db(checkpoint_dir: Path) -> Path:
    """The local MLflow store used when ``MLFLOW_TRACKING_URI`` is unset: one SQLite file beside the jobs."""
    return (checkpoint_dir / "mlflow.db").resolve()


def tracker_arguments(report_to: list[str] | None, *, job_id: str, skill_name: str, output_dir: Path) -> dict[str, Any]:
    """Trainer arguments (``report_to``, ``run_name``, ``project``) for a job, with each tracker's store set.

    - TensorBoard writes event files to ``<output_dir>/tensorboard/`` (``TENSORBOARD_LOGGING_DIR``).
    - MLflow logs to ``MLFLOW_TRACKING_URI`` when set, else to a local store ``<checkpoints>/mlflow.db``; the
      experiment is ``MLFLOW_EXPERIMENT_NAME`` or ``skill-adapter``; the run is tagged with the skill.
    - trackio logs locally (its own folder under ``TRACKIO_DIR`` or the Hugging Face cache) to a project named
      after the skill.
    """
    chosen = [name for name in (report_to or []) if name in TRACKERS]
    if not chosen:
        return {"report_to": "none"}
    if "tensorboard" in chosen:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(output_dir / "tensorboard")
    if "mlflow" in chosen:
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            # MLflow 3 refuses its old folder store by default; its SQLite store is the local one it supports.
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{mlflow_db(output_dir.parent)}"
        os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", "skill-adapter")
        os.environ["MLFLOW_TAGS"] = json.dumps({"skill": skill_name, "job_id": job_id})
    return {"report_to": chosen, "run_name": job_id, "project": skill_name or "skill-adapter"}
