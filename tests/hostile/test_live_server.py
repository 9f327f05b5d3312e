"""Against a real server (uvicorn with the service's connection guard): stalled clients lose their
connection, and /api/health keeps answering while a hostile 1 MB skill is being previewed."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from skill_adapter.api.connections import guarded_protocol
from skill_adapter.api.main import create_app
from skill_adapter.core.config import Settings

READ_TIMEOUT = 1.0


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    app = create_app(settings, enqueue=lambda _: None, run_sweeper=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", http=guarded_protocol(READ_TIMEOUT), lifespan="on"
    )
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


def closed_by_server(sock: socket.socket, *, within: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``within`` seconds, ignoring any answer bytes."""
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # connects and says nothing
        b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",  # half a header
        b"POST /api/skills/preview HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{",
    ],
    ids=["nothing", "partial-headers", "short-body"],
)
def test_stalled_clients_lose_their_connection(server: str, sent: bytes) -> None:
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(sent)
        # Generous: the deadline is READ_TIMEOUT; without the guard the connection stays open for good.
        assert closed_by_server(sock, within=30 * READ_TIMEOUT)
    assert httpx.get(f"{server}/api/health", timeout=30).status_code in (200, 503)


def test_a_slow_but_steady_body_is_not_cut(server: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    body = b'{"skill_path": "commit-messages"}'
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /api/skills/preview HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        for index in range(0, len(body), 8):  # a chunk every half deadline: slow, never stalled
            sock.sendall(body[index : index + 8])
            time.sleep(READ_TIMEOUT / 2)
        sock.settimeout(60)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_health_answers_while_a_hostile_skill_is_previewed(server: str) -> None:
    hostile = "---\nname: hostile\ndescription: Use when testing.\n---\n\n# T\n\n" + "[" * 480_000 + "](" * 240_000
    outcome: dict[str, Any] = {}

    def preview() -> None:
        started = time.monotonic()
        resp = httpx.post(f"{server}/api/skills/preview", files={"file": ("SKILL.md", hostile.encode())}, timeout=120)
        outcome.update(status=resp.status_code, seconds=time.monotonic() - started)

    thread = threading.Thread(target=preview)
    thread.start()
    answered = 0
    while thread.is_alive() or answered == 0:
        assert httpx.get(f"{server}/api/health", timeout=60).status_code in (200, 503)
        answered += 1
    thread.join()
    assert outcome["status"] in (200, 422), outcome  # a dataset, or the budget's clear refusal: never a hang
