"""Workers record heartbeats with their device; routing, prefetch 1, late ack and one process per job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from skill_adapter.cli import worker_command
from skill_adapter.core.config import Settings
from skill_adapter.core.db import init_db, session_scope
from skill_adapter.health import health_report
from skill_adapter.models import Worker, utcnow
from skill_adapter.worker.device import Gpu, _selected, parse_nvidia_smi, worker_device
from skill_adapter.worker.heartbeat import WorkerHeartbeat, forget_dead_workers, this_worker_id
from skill_adapter.worker.queue import EVALUATE_TASK, EVALUATION_QUEUE, TRAIN_TASK, TRAINING_QUEUE, create_celery

GPU = {
    "device": "cuda",
    "gpu_name": "NVIDIA A10G",
    "gpu_free_mb": 22000.0,
    "gpu_total_mb": 23028.0,
    "details": {"gpus": []},
}


def rows(settings: Settings) -> list[Worker]:
    with session_scope(settings) as session:
        return list(session.scalars(select(Worker)).all())


def test_heartbeat_writes_refreshes_and_removes_the_row(settings: Settings) -> None:
    init_db(settings)
    beat = WorkerHeartbeat(settings, name="gpu0@host", queues=["training"], interval=0.05, device=lambda: GPU)
    beat.start()
    try:
        deadline = time.monotonic() + 5
        while not rows(settings) and time.monotonic() < deadline:
            time.sleep(0.02)
        first = rows(settings)[0]
        time.sleep(0.3)
        second = rows(settings)[0]
    finally:
        beat.stop()
    assert first.id == this_worker_id() == f"{first.hostname}:{os.getpid()}"
    assert (first.name, first.queues, first.device, first.gpu_name, first.gpu_free_mb) == (
        "gpu0@host",
        "training",
        "cuda",
        "NVIDIA A10G",
        22000.0,
    )
    assert second.heartbeat_at > first.heartbeat_at and second.started_at == first.started_at
    assert rows(settings) == []  # a clean stop is not a dead worker


def test_dead_workers_are_forgotten(settings: Settings) -> None:
    init_db(settings)
    with session_scope(settings) as session:
        session.add(Worker(id="old:1", hostname="old", pid=1, heartbeat_at=utcnow() - timedelta(days=2)))
        session.add(Worker(id="new:2", hostname="new", pid=2, heartbeat_at=utcnow()))
    assert forget_dead_workers(settings) == 1
    assert [row.id for row in rows(settings)] == ["new:2"]


def test_nvidia_smi_rows_and_visible_devices() -> None:
    gpus = parse_nvidia_smi(
        "0, GPU-aaaa-1111, NVIDIA H100 80GB HBM3, 80000, 81559\n"
        "1, GPU-bbbb-2222, NVIDIA H100 80GB HBM3, 1000, 81559\n"
        "2, GPU-cccc-3333, Broken, [N/A], [N/A]\n"
    )
    assert [gpu.index for gpu in gpus] == [0, 1]
    assert gpus[0] == Gpu(0, "GPU-aaaa-1111", "NVIDIA H100 80GB HBM3", 80000.0, 81559.0)
    assert _selected(gpus, None) == gpus
    assert _selected(gpus, "1") == [gpus[1]]
    assert _selected(gpus, "1,0") == [gpus[1], gpus[0]]
    assert _selected(gpus, "GPU-bbbb") == [gpus[1]]
    assert _selected(gpus, "0,7,1") == [gpus[0]]  # CUDA stops at the first invalid entry
    assert _selected(gpus, "-1") == []


def test_no_visible_gpu_is_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    device = worker_device()
    assert device["device"] == "cpu" and device["gpu_name"] is None and device["details"]["gpus"] == []
    assert device["details"]["torch"]  # read from the package metadata


def test_heartbeat_health_and_api_never_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import skill_adapter.api.main, skill_adapter.worker.celery_app\n"
        "from skill_adapter.core.config import load_settings\n"
        "from skill_adapter.health import health_report\n"
        "from skill_adapter.worker.device import worker_device\n"
        "worker_device()\n"
        "health_report(load_settings())\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_celery_takes_one_job_at_a_time_and_routes_queues(settings: Settings) -> None:
    conf = create_celery(settings).conf
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_acks_late is True and conf.task_reject_on_worker_lost is True
    assert conf.task_routes == {TRAIN_TASK: {"queue": TRAINING_QUEUE}, EVALUATE_TASK: {"queue": EVALUATION_QUEUE}}
    cmd = worker_command("evaluation", "eval0@%h")
    assert "--pool=solo" in cmd and "--concurrency=1" in cmd
    assert cmd[cmd.index("-Q") + 1] == "evaluation" and cmd[cmd.index("-n") + 1] == "eval0@%h"
    assert worker_command()[worker_command().index("-Q") + 1] == "training,evaluation"


@pytest.mark.slow  # starts a Celery worker process
def test_a_worker_process_reports_itself_and_leaves_on_shutdown(settings: Settings, tmp_path: Path) -> None:
    init_db(settings)
    env = {
        **os.environ,
        "SKILL_ADAPTER_MODEL": "tiny",
        "SKILL_ADAPTER_DATA_DIR": str(settings.data_dir),
        "SKILL_ADAPTER_CHECKPOINT_DIR": str(settings.checkpoint_dir),
        "SKILL_ADAPTER_SKILLS_ROOT": str(settings.skills_root),
        "CUDA_VISIBLE_DEVICES": "",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "skill_adapter.cli", "worker", "--queues", "evaluation", "--name", "probe@%h"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        workers: list[dict[str, object]] = []
        deadline = time.monotonic() + 60
        while not workers and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            workers = health_report(settings)["workers"]
        assert workers, proc.stderr.read().decode() if proc.poll() is not None and proc.stderr else "no heartbeat"
        (worker,) = workers
        assert str(worker["name"]).startswith("probe@")
        assert worker["queues"] == ["evaluation"] and worker["device"] == "cpu"
        assert worker["pid"] == proc.pid  # `skill-adapter worker` becomes the Celery worker: signals reach it
        assert health_report(settings)["warnings"] == ["no live worker consumes the training queue"]
    finally:
        proc.send_signal(signal.SIGTERM)  # as `docker stop` does
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while rows(settings) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert rows(settings) == []
