"""GET /api/health: database, broker and live workers; 503 with the same shape when a dependency is down."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from skill_adapter.api.main import create_app
from skill_adapter.core.config import Settings
from skill_adapter.core.db import head_revision, init_db, session_scope
from skill_adapter.health import EmbeddedWorker, health_report
from skill_adapter.models import Evaluation, Job, Worker, utcnow
from skill_adapter.worker.heartbeat import WORKER_LIVE_SECONDS

KEYS = {"status", "database", "broker", "workers", "embedded_worker", "model", "warnings"}


def add_worker(settings: Settings, worker_id: str, *, age: float = 0.0, **fields: object) -> None:
    hostname, _, pid = worker_id.rpartition(":")
    row = Worker(id=worker_id, name=f"w@{hostname}", hostname=hostname, pid=int(pid), queues="training,evaluation")
    row.heartbeat_at = utcnow() - timedelta(seconds=age)
    for key, value in fields.items():
        setattr(row, key, value)
    with session_scope(settings) as session:
        session.add(row)


def test_health_ok_on_the_embedded_defaults(client: TestClient) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == KEYS and body["status"] == "ok"
    assert body["database"]["status"] == "ok" and body["database"]["dialect"] == "sqlite"
    assert body["database"]["revision"] == body["database"]["head"] == head_revision()
    assert body["broker"] == {
        **body["broker"],
        "status": "ok",
        "transport": "filesystem",
        "messages": {"training": 0, "evaluation": 0},
    }
    assert body["workers"] == [] and body["embedded_worker"] is None  # no serve: no embedded worker
    assert any("no live worker" in warning for warning in body["warnings"])
    model = body["model"]
    assert (model["name"], model["kind"], model["ready"], model["converts_on_first_use"]) == (
        "tiny",
        "builtin",
        True,
        False,
    )
    assert model["parameters"] > 0 and model["size_bytes"] > 0 and "ready" in model["summary"]


def test_health_says_the_default_model_is_converted_on_first_use_without_torch(tmp_path: Path) -> None:
    """The default built-in model, not yet converted: health and /api/config say so, and import no torch."""
    code = (
        "import json, sys\n"
        "from fastapi.testclient import TestClient\n"
        "from skill_adapter.api.main import create_app\n"
        "from skill_adapter.core.config import Settings\n"
        f"s = Settings(_env_file=None, data_dir={str(tmp_path / 'data')!r}, checkpoint_dir={str(tmp_path / 'c')!r})\n"
        "with TestClient(create_app(s, enqueue=lambda job_id: None, run_sweeper=False)) as client:\n"
        "    health = client.get('/api/health').json()\n"
        "    config = client.get('/api/config').json()\n"
        "print(json.dumps({'health': health['model'], 'config': config['base_model'], "
        "'max_len': config['model_max_length'], 'torch': 'torch' in sys.modules}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SKILL_ADAPTER_MODEL"}  # unset: the default model
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    model = result["health"]  # the operator's view; /api/config names the folder relative to the models folder
    shown = "smollm2-135m-instruct"
    assert result["config"] == {**model, "path": shown, "summary": model["summary"].replace(model["path"], shown)}
    assert (model["name"], model["builtin"], model["ready"], model["converts_on_first_use"]) == (
        "smollm2-135m-instruct", "smollm2-135m-instruct", False, True
    )  # fmt: skip
    assert model["path"] == str((tmp_path / "data" / "models" / "smollm2-135m-instruct").resolve())
    assert model["parameters"] == 134_515_008 and 5e8 < model["size_bytes"] < 6e8
    assert "converted on first use" in model["summary"]
    assert result["max_len"] == 8192  # known before the conversion
    assert result["torch"] is False
    assert not (tmp_path / "data" / "models" / "smollm2-135m-instruct").exists()  # nothing converted


def test_health_counts_waiting_messages_per_queue(settings: Settings) -> None:
    from skill_adapter.queued import EVALUATION, TRAINING, WorkId
    from skill_adapter.worker.queue import sender

    init_db(settings)
    enqueue = sender(settings)
    for job_id, kind in (("train-a", TRAINING), ("train-b", TRAINING), ("eval-c", EVALUATION)):
        enqueue(WorkId(job_id, kind.name))
    assert health_report(settings)["broker"]["messages"] == {"training": 2, "evaluation": 1}


def test_health_lists_live_workers_with_devices_and_their_job(client: TestClient, settings: Settings) -> None:
    add_worker(settings, "gpu-host:11", device="cuda", gpu_name="NVIDIA H100 80GB HBM3", gpu_free_mb=80000.0)
    add_worker(settings, "cpu-host:12", device="cpu")
    add_worker(settings, "dead-host:13", age=WORKER_LIVE_SECONDS + 5)
    with session_scope(settings) as session:
        session.add(Job(id="train-1", status="running", skill_path="x", config={}, worker_id="gpu-host:11"))
    body = client.get("/api/health").json()
    workers = {worker["id"]: worker for worker in body["workers"]}
    assert set(workers) == {"gpu-host:11", "cpu-host:12"}
    gpu = workers["gpu-host:11"]
    assert (gpu["device"], gpu["gpu_name"], gpu["gpu_free_mb"], gpu["job_id"]) == (
        "cuda",
        "NVIDIA H100 80GB HBM3",
        80000.0,
        "train-1",
    )
    assert gpu["queues"] == ["training", "evaluation"] and gpu["hostname"] == "gpu-host" and gpu["pid"] == 11
    assert workers["cpu-host:12"]["device"] == "cpu" and workers["cpu-host:12"]["job_id"] is None
    with session_scope(settings) as session:
        session.add(Evaluation(id="eval-1", job_id="train-1", status="running", params={}, worker_id="cpu-host:12"))
    workers = {worker["id"]: worker for worker in client.get("/api/health").json()["workers"]}
    assert workers["cpu-host:12"]["job_id"] == "eval-1" and workers["gpu-host:11"]["job_id"] == "train-1"
    assert body["warnings"] == []


def test_health_warns_about_an_unserved_queue(client: TestClient, settings: Settings) -> None:
    add_worker(settings, "host:1", queues="training")
    assert client.get("/api/health").json()["warnings"] == ["no live worker consumes the evaluation queue"]


def test_bad_broker_url_fails_fast_with_503(settings: Settings) -> None:
    bad = settings.model_copy(update={"broker_url": "redis://:secret@127.0.0.1:1/0"})
    init_db(bad)
    app = create_app(bad, enqueue=lambda _job_id: None, run_sweeper=False)
    with TestClient(app) as client:
        started = time.monotonic()
        response = client.get("/api/health")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.json()
    assert set(body) == KEYS and body["status"] == "unavailable"
    assert body["database"]["status"] == "ok"
    # Fast failure is the refused connection's own error, not the check's deadline running out ("no answer
    # from the broker within 3 s"): that proves it did not wait, whatever the machine's load does to the clock.
    assert body["broker"]["status"] == "error" and "ConnectionError" in body["broker"]["error"]
    assert "no answer" not in body["broker"]["error"]
    assert elapsed < 30, f"health took {elapsed:.1f} s: a refused broker must not be retried"  # a hang, not a timing
    assert "secret" not in response.text  # the password is masked


def test_missing_database_gives_503(client: TestClient, settings: Settings) -> None:
    (settings.data_dir / "skill-adapter.db").unlink()
    response = client.get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert set(body) == KEYS and body["database"]["status"] == "error"
    assert "skill-adapter db upgrade" in body["database"]["error"]
    assert body["broker"]["status"] == "ok" and body["workers"] == []


def test_unreachable_postgres_gives_an_error_quickly(settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once the socket closes
    down = settings.model_copy(update={"database_url": f"postgresql+psycopg://postgres@127.0.0.1:{port}/nothing"})
    down.prepare_dirs()
    started = time.monotonic()
    report = health_report(down, timeout=2)
    assert time.monotonic() - started < 3
    assert report["status"] == "unavailable" and report["database"]["status"] == "error"
    assert report["broker"]["status"] == "ok"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers: a hung broker or database."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_a_hung_broker_and_database_never_hang_health(settings: Settings, silent_server: int) -> None:
    hung = settings.model_copy(
        update={
            "broker_url": f"redis://127.0.0.1:{silent_server}/0",
            "database_url": f"postgresql+psycopg://postgres@127.0.0.1:{silent_server}/nothing",
        }
    )
    hung.prepare_dirs()
    started = time.monotonic()
    report = health_report(hung, timeout=1)
    assert time.monotonic() - started < 2
    assert report["database"]["status"] == "error" and report["broker"]["status"] == "error"
    assert "within 1 s" in report["database"]["error"] or "timeout" in report["database"]["error"].lower()


@pytest.mark.services
def test_health_pings_a_real_redis(settings: Settings) -> None:
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis on 127.0.0.1:6379: {exc}")
    from skill_adapter.queued import EVALUATION, TRAINING, WorkId
    from skill_adapter.worker.queue import sender

    db = 15  # a database of its own on the machine's Redis, emptied before and after
    client = redis.Redis(host="127.0.0.1", port=6379, db=db)
    client.flushdb()
    on_redis = settings.model_copy(update={"broker_url": f"redis://127.0.0.1:6379/{db}"})
    init_db(on_redis)
    try:
        enqueue = sender(on_redis)
        for job_id, kind in (("train-a", TRAINING), ("eval-b", EVALUATION), ("eval-c", EVALUATION)):
            enqueue(WorkId(job_id, kind.name))
        with TestClient(create_app(on_redis, enqueue=lambda _job_id: None, run_sweeper=False)) as test_client:
            response = test_client.get("/api/health")
    finally:
        client.flushdb()
    assert response.status_code == 200
    broker = response.json()["broker"]
    assert broker["status"] == "ok" and broker["transport"] == "redis"
    assert broker["messages"] == {"training": 1, "evaluation": 2}


def test_a_schema_behind_is_a_database_error(client: TestClient, settings: Settings) -> None:
    from skill_adapter.core.db import get_engine

    with get_engine(settings).begin() as conn:
        conn.exec_driver_sql("DELETE FROM alembic_version")
    response = client.get("/api/health")
    assert response.status_code == 503
    database = response.json()["database"]
    assert database["status"] == "error" and database["revision"] is None
    assert "run `skill-adapter db upgrade`" in database["error"]


def test_embedded_worker_is_starting_then_running_then_stale_then_exited(settings: Settings) -> None:
    """What `serve` shows while its own worker boots: "starting", never "no live worker"."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    embedded = EmbeddedWorker(process)
    app = create_app(settings, enqueue=lambda _job_id: None, run_sweeper=False, embedded_worker=embedded)
    try:
        with TestClient(app) as client:
            body = client.get("/api/health").json()
            assert body["status"] == "ok" and body["workers"] == []
            assert body["embedded_worker"] == {**body["embedded_worker"], "pid": process.pid, "status": "starting"}
            assert len(body["warnings"]) == 1 and "the embedded worker is starting" in body["warnings"][0]
            assert not any("no live worker" in warning for warning in body["warnings"])

            worker_id = f"{socket.gethostname()}:{process.pid}"  # the row the worker's heartbeat writes
            add_worker(settings, worker_id)
            body = client.get("/api/health").json()
            assert body["embedded_worker"]["status"] == "running" and body["warnings"] == []

            with session_scope(settings) as session:
                row = session.get(Worker, worker_id)
                assert row is not None
                row.heartbeat_at = utcnow() - timedelta(seconds=WORKER_LIVE_SECONDS + 5)
            body = client.get("/api/health").json()
            assert body["embedded_worker"]["status"] == "not responding"
            assert any("heartbeat is stale" in warning for warning in body["warnings"])
            assert any("no live worker" in warning for warning in body["warnings"])

            process.kill()
            process.wait()
            body = client.get("/api/health").json()
            assert body["embedded_worker"]["status"] == "exited" and body["embedded_worker"]["exit_code"] == -9
            assert any("exited (code -9)" in warning for warning in body["warnings"])
    finally:
        process.kill()
        process.wait()


def test_a_starting_embedded_worker_beside_a_live_remote_one_is_no_warning(settings: Settings) -> None:
    init_db(settings)
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        add_worker(settings, "gpu-host:7")
        report = health_report(settings, embedded_worker=EmbeddedWorker(process))
        assert report["embedded_worker"]["status"] == "starting" and report["warnings"] == []
    finally:
        process.kill()
        process.wait()
