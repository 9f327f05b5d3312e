"""Who may do what: API keys, owners, admission control and the browser-safe edge (issue 15, docs/security.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from skill_adapter import auth, crud, queued
from skill_adapter.api.main import create_app
from skill_adapter.cli import main as cli_main
from skill_adapter.core.config import Settings
from skill_adapter.core.db import init_db, session_scope
from skill_adapter.models import ApiKey, Job
from skill_adapter.queued import EVALUATION, TRAINING
from tests.helpers.api import GUIDE_BODY, assert_error
from tests.helpers.own_postgres import own_postgres


@pytest.fixture
def secure_settings(settings: Settings) -> Settings:
    """The test settings with the key cache off, so a key made or revoked counts at the next request."""
    return settings.model_copy(update={"keys_cache_seconds": 0.0})


def make_client(settings: Settings, enqueued: list[str] | None = None, **overrides: Any) -> TestClient:
    app = create_app(
        settings.model_copy(update=overrides), enqueue=(enqueued if enqueued is not None else []).append,
        run_sweeper=False,
    )  # fmt: skip
    return TestClient(app)


@pytest.fixture
def keys(secure_settings: Settings) -> dict[str, dict[str, str]]:
    """Three keys: two users and an admin, as the Authorization headers to send."""
    init_db(secure_settings)
    made = {}
    with session_scope(secure_settings) as session:
        for name, admin in (("alice", False), ("bob", False), ("root", True)):
            made[name] = {"Authorization": f"Bearer {auth.create_key(session, name, admin=admin)}"}
    return made


@pytest.fixture
def secure(secure_settings: Settings, keys: dict[str, dict[str, str]], enqueued: list[str]) -> Iterator[TestClient]:
    with make_client(secure_settings, enqueued) as client:
        yield client


def job_count(settings: Settings, owner: str | None = None) -> int:
    with session_scope(settings) as session:
        query = select(func.count()).select_from(Job)
        if owner is not None:
            query = query.where(Job.owner == owner)
        return int(session.scalar(query) or 0)


# 1. API keys ------------------------------------------------------------------------------------------


def test_keys_are_stored_hashed_and_required_once_one_exists(
    client: TestClient, secure_settings: Settings, enqueued: list[str]
) -> None:
    assert client.get("/api/training").status_code == 200  # no key yet: the service as before
    with make_client(secure_settings) as open_client:
        assert open_client.post("/api/training/start", json=GUIDE_BODY).status_code == 202
    with session_scope(secure_settings) as session:
        key = auth.create_key(session, "alice")
    with session_scope(secure_settings) as session:
        stored = session.scalars(select(ApiKey)).one()
    assert key.startswith("sa_") and len(key) >= 40 and key not in (stored.key_hash, stored.prefix)
    assert stored.key_hash == auth.hash_key(key)

    with make_client(secure_settings) as secured:
        for method, path in [
            ("GET", "/api/training"),
            ("GET", "/api/config"),
            ("GET", "/api/skills"),
            ("POST", "/api/training/start"),
            ("GET", "/api/training/x/status"),
            ("POST", "/api/training/x/cancel"),
            ("POST", "/api/skills/preview"),
        ]:
            answer = secured.request(method, path, json=GUIDE_BODY if method == "POST" else None)
            assert_error(answer, 401, "unauthorized")
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        for bad in ("Bearer sa_wrong", "Basic " + key, key, "Bearer "):
            assert_error(secured.get("/api/training", headers={"Authorization": bad}), 401, "unauthorized")
        good = {"Authorization": f"Bearer {key}"}
        assert secured.get("/api/training", headers=good).status_code == 200

        # Health stays open, but tells a caller without a key only the statuses.
        health = secured.get("/api/health").json()
        assert set(health) == {"status", "database", "broker", "auth"} and "url" not in health["database"]
        assert "workers" in secured.get("/api/health", headers=good).json()

        with session_scope(secure_settings) as session:
            assert auth.revoke_key(session, "alice") == 1
        assert_error(secured.get("/api/training", headers=good), 401, "unauthorized")


def test_keys_cli_prints_the_key_alone_on_its_last_line(
    secure_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SKILL_ADAPTER_DATA_DIR", str(secure_settings.data_dir))
    assert cli_main(["keys", "create", "ci-bot", "--admin"]) == 0
    key = capsys.readouterr().out.rstrip("\n").splitlines()[-1]
    assert key.startswith("sa_") and " " not in key
    assert cli_main(["keys", "create", "ci-bot"]) == 2  # one live key per name
    assert cli_main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "ci-bot" in listing and "admin" in listing and key not in listing
    assert cli_main(["keys", "revoke", "ci-bot"]) == 0
    assert cli_main(["keys", "revoke", "ci-bot"]) == 1
    assert "revoked" in (capsys.readouterr().out + "")


def test_serve_refuses_the_network_without_a_key(
    secure_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from skill_adapter.cli import serve_access_check

    init_db(secure_settings)
    monkeypatch.setenv("SKILL_ADAPTER_DATA_DIR", str(secure_settings.data_dir))
    assert cli_main(["serve", "--host", "0.0.0.0", "--no-worker"]) == 2  # refused before binding anything
    assert "refusing to serve on 0.0.0.0 without an API key" in capsys.readouterr().err
    assert serve_access_check(secure_settings, "127.0.0.1", insecure_no_auth=False)[0]
    allowed, lines = serve_access_check(secure_settings, "0.0.0.0", insecure_no_auth=True)
    assert allowed and "insecure" in lines[0]
    with session_scope(secure_settings) as session:
        auth.create_key(session, "ops")
    allowed, lines = serve_access_check(secure_settings, "0.0.0.0", insecure_no_auth=False)
    assert allowed and "1 API key" in lines[0]


# 2. Owners -------------------------------------------------------------------------------------------


def test_another_key_gets_404_and_an_admin_sees_everything(
    secure: TestClient, secure_settings: Settings, keys: dict[str, dict[str, str]]
) -> None:
    alice, bob, root = keys["alice"], keys["bob"], keys["root"]
    job_id = secure.post("/api/training/start", json=GUIDE_BODY, headers=alice).json()["job_id"]
    with session_scope(secure_settings) as session:
        evaluation = crud.create_evaluation(
            session=session, evaluation_id="eval-000000000001", job_id=job_id, params={}, owner="alice"
        )
        crud.update_job(session=session, job_id=job_id, status="succeeded")
    job = f"/api/training/{job_id}"
    reads = ["status", "logs", "metrics", "checkpoints", "evaluation", "evaluations", f"evaluations/{evaluation.id}"]
    reads.append("events")
    for path in reads:
        answer = secure.get(f"{job}/{path}", headers=bob)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "job_not_found", path
        assert secure.get(f"{job}/{path}", headers=alice).status_code == 200, path
        assert secure.get(f"{job}/{path}", headers=root).status_code == 200, path
    for path in ("cancel", "evaluate", f"evaluations/{evaluation.id}/cancel"):
        assert_error(secure.post(f"{job}/{path}", headers=bob), 404, "job_not_found")
    # Continuing from another key's adapter is refused as if that job did not exist.
    answer = secure.post("/api/training/start", json={**GUIDE_BODY, "init_adapter": job_id}, headers=bob)
    assert "not a known job" in assert_error(answer, 422, "invalid_parameter")["message"]

    secure.post("/api/training/start", json=GUIDE_BODY, headers=bob)
    assert [j["job_id"] for j in secure.get("/api/training", headers=alice).json()["data"]] == [job_id]
    assert secure.get("/api/training", headers=bob).json()["count"] == 1
    assert secure.get("/api/training", headers=root).json()["count"] == 2

    # The same Idempotency-Key from two keys makes two jobs: one key never replays another's.
    same = {"Idempotency-Key": "shared-key-1"}
    first = secure.post("/api/training/start", json=GUIDE_BODY, headers={**alice, **same}).json()["job_id"]
    second = secure.post("/api/training/start", json=GUIDE_BODY, headers={**bob, **same}).json()["job_id"]
    assert first != second


def test_evaluations_can_be_cancelled_like_jobs(secure: TestClient, secure_settings: Settings, keys: Any) -> None:
    alice = keys["alice"]
    job_id = secure.post("/api/training/start", json=GUIDE_BODY, headers=alice).json()["job_id"]
    with session_scope(secure_settings) as session:
        for n in (1, 2):
            crud.create_evaluation(
                session=session, evaluation_id=f"eval-00000000000{n}", job_id=job_id, params={}, owner="alice"
            )
        assert queued.claim(session=session, kind=EVALUATION, work_id="eval-000000000002", worker_id="w")
    base = f"/api/training/{job_id}/evaluations"
    for evaluation_id in ("eval-000000000001", "eval-000000000002"):  # queued, then running
        answer = secure.post(f"{base}/{evaluation_id}/cancel", headers=alice)
        assert answer.status_code == 202 and answer.json()["status"] == "cancelled"
        assert secure.post(f"{base}/{evaluation_id}/cancel", headers=alice).json()["status"] == "cancelled"
    with session_scope(secure_settings) as session:  # the worker's heartbeat now fails: it stops the process
        assert not queued.renew_lease(session=session, kind=EVALUATION, work_id="eval-000000000002", worker_id="w")
        crud.create_evaluation(
            session=session, evaluation_id="eval-000000000003", job_id=job_id, params={}, owner="alice"
        )
        queued.claim(session=session, kind=EVALUATION, work_id="eval-000000000003", worker_id="w")
        queued.finish(session=session, kind=EVALUATION, work_id="eval-000000000003", status="succeeded", report={})
    assert_error(secure.post(f"{base}/eval-000000000003/cancel", headers=alice), 409, "job_state_conflict")


# 3. Admission control ----------------------------------------------------------------------------------


def test_caps_answer_429_and_503_with_retry_after_and_create_nothing(
    secure_settings: Settings, keys: dict[str, dict[str, str]]
) -> None:
    alice, bob = keys["alice"], keys["bob"]
    with make_client(secure_settings, max_active_jobs_per_key=2) as client:
        assert [client.post("/api/training/start", json=GUIDE_BODY, headers=alice).status_code for _ in range(2)] == [
            202,
            202,
        ]
        refused = client.post("/api/training/start", json=GUIDE_BODY, headers=alice)
        assert_error(refused, 429, "too_many_active_jobs")
        assert int(refused.headers["Retry-After"]) > 0
        assert job_count(secure_settings, "alice") == 2
        assert client.post("/api/training/start", json=GUIDE_BODY, headers=bob).status_code == 202  # per key
        first = client.get("/api/training", headers=alice).json()["data"][0]["job_id"]
        client.post(f"/api/training/{first}/cancel", headers=alice)
        assert client.post("/api/training/start", json=GUIDE_BODY, headers=alice).status_code == 202
    with make_client(secure_settings, submissions_per_minute=4) as client:
        # alice made 3 in this minute: one more is allowed, then 429 until the first leaves the window.
        assert client.post("/api/training/start", json=GUIDE_BODY, headers={**keys["root"]}).status_code == 202
        bob_two = client.post("/api/training/start", json=GUIDE_BODY, headers=bob)
        assert bob_two.status_code == 202
        for _ in range(2):
            client.post("/api/training/start", json=GUIDE_BODY, headers=bob)
        refused = client.post("/api/training/start", json=GUIDE_BODY, headers=bob)
        assert_error(refused, 429, "rate_limited")
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    before = job_count(secure_settings)
    with session_scope(secure_settings) as session:
        queued = int(session.scalar(select(func.count()).select_from(Job).where(Job.status == "queued")) or 0)
    with make_client(secure_settings, max_queue_depth=queued) as client:
        full = client.post("/api/training/start", json=GUIDE_BODY, headers=keys["root"])
        assert_error(full, 503, "queue_full")
        assert int(full.headers["Retry-After"]) > 0
    assert job_count(secure_settings) == before


def test_a_burst_from_one_key_does_not_overshoot_or_starve_another(
    secure_settings: Settings, keys: dict[str, dict[str, str]]
) -> None:
    """Issue 15's measurement, quick: 300 concurrent submissions from one key, one from another."""
    burst(secure_settings, keys)


@pytest.mark.services
def test_the_burst_on_postgres(secure_settings: Settings) -> None:
    """The same burst on Postgres, where the admission lock is a row lock instead of SQLite's write lock."""
    with own_postgres(secure_settings) as pg:
        init_db(pg, upgrade=True)
        with session_scope(pg) as session:
            made = {name: {"Authorization": f"Bearer {auth.create_key(session, name)}"} for name in ("alice", "bob")}
        burst(pg, made)


def burst(secure_settings: Settings, keys: dict[str, dict[str, str]]) -> None:
    enqueued: list[str] = []
    with make_client(secure_settings, enqueued, max_active_jobs_per_key=7, submissions_per_minute=1000) as client:

        def submit(n: int) -> tuple[str, int]:
            who = "bob" if n == 150 else "alice"
            return who, client.post("/api/training/start", json=GUIDE_BODY, headers=keys[who]).status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(submit, range(301)))
    statuses = Counter(status for _, status in answers)
    assert set(statuses) <= {202, 429}, statuses  # nothing 5xx
    assert ("bob", 202) in answers
    assert statuses[202] == 8  # exactly the cap for alice (no overshoot under concurrency), plus bob's
    assert job_count(secure_settings, "alice") == 7 and job_count(secure_settings, "bob") == 1
    assert len(enqueued) == 8  # every accepted job was sent to the queue: nothing lost
    with session_scope(secure_settings) as session:
        bob_job = session.scalar(select(Job.id).where(Job.owner == "bob"))
        assert bob_job in enqueued and queued.claim(session=session, kind=TRAINING, work_id=str(bob_job), worker_id="w")


# 4. The browser-safe edge ------------------------------------------------------------------------------


EVIL = "https://evil.example"


def test_dns_rebinding_and_unknown_hosts_are_refused(secure_settings: Settings) -> None:
    with make_client(secure_settings) as client:
        for host in ("evil.example", "evil.example:8000", "127.0.0.1.nip.io"):
            answer = client.get("/api/health", headers={"Host": host})
            assert_error(answer, 400, "host_not_allowed")
        for host in ("127.0.0.1:8000", "localhost", "[::1]:8000", "LOCALHOST.:8000"):
            assert client.get("/api/health", headers={"Host": host}).status_code in (200, 503), host
    with make_client(secure_settings, allowed_hosts="gpu-box") as client:
        assert client.get("/api/health", headers={"Host": "gpu-box:8000"}).status_code in (200, 503)
        assert_error(client.get("/api/health", headers={"Host": "localhost"}), 400, "host_not_allowed")


def test_cross_site_posts_change_nothing(client: TestClient, settings: Settings, enqueued: list[str]) -> None:
    skill = (Path(settings.skills_root) / "commit-messages" / "SKILL.md").read_bytes()
    browser = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}
    attacks = [
        ("/api/skills/preview", {"content": b'{"skill_path": "commit-messages"}', "headers": {"Content-Type": "text/plain"}}),  # noqa: E501
        ("/api/training/start", {"files": {"file": ("SKILL.md", skill)}}),
        ("/api/training/start", {"data": {"skill_path": "commit-messages/SKILL.md"}}),
        ("/api/training/x/cancel", {}),
    ]  # fmt: skip
    for path, kwargs in attacks:
        headers = {**kwargs.pop("headers", {}), **browser}
        assert_error(client.post(path, headers=headers, **kwargs), 403, "cross_site_refused")
    # Only Sec-Fetch-Site (no Origin), a "null" origin, or a same-origin form without the dashboard's header.
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}, {"Origin": "http://testserver"}):
        answer = client.post("/api/training/start", files={"file": ("SKILL.md", skill)}, headers=headers)
        assert_error(answer, 403, "cross_site_refused")
    assert job_count(settings) == 0 and enqueued == []
    # The dashboard (same origin, its header) and programs (no browser markers, as curl) are served.
    dashboard = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin", "X-Skill-Adapter-Client": "dashboard"}
    assert client.post("/api/training/start", json=GUIDE_BODY, headers=dashboard).status_code == 202
    assert client.post("/api/training/start", files={"file": ("SKILL.md", skill)}).status_code == 202
    assert job_count(settings) == 2


def test_cors_is_closed_unless_origins_are_listed(secure_settings: Settings) -> None:
    preflight = {
        "Origin": EVIL,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    with make_client(secure_settings) as client:
        answer = client.options("/api/training/start", headers=preflight)
        assert "access-control-allow-origin" not in answer.headers
        assert "access-control-allow-origin" not in client.get("/api/health", headers={"Origin": EVIL}).headers
    with make_client(secure_settings, cors_origins=f"{EVIL}/") as client:
        answer = client.options("/api/training/start", headers=preflight)
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == EVIL
        other = {**preflight, "Origin": "https://other.example"}
        assert "access-control-allow-origin" not in client.options("/api/training/start", headers=other).headers
        # A listed origin's page may post once it sends the header that needed the preflight.
        allowed = {"Origin": EVIL, "X-Skill-Adapter-Client": "app"}
        assert client.post("/api/training/start", json=GUIDE_BODY, headers=allowed).status_code == 202
