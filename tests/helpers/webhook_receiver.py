"""A real webhook receiver on 127.0.0.1 for tests: records every request, answers as scripted."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A signing secret in the format the service accepts (whsec_ + base64 of 32 bytes).
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    # What to do with the next requests, in order: an HTTP status, "hang", "huge", or ("redirect", location).
    # When the script runs out, the receiver answers 204.
    script: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def webhook_receiver(script: list[Any] | None = None) -> Iterator[Receiver]:
    receiver = Receiver(url="", script=list(script or []))
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with receiver.lock:
                receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                action = receiver.script.pop(0) if receiver.script else 204
            if action == "hang":
                stop.wait(30)
                return
            if action == "huge":
                self.send_response(200)
                self.send_header("content-length", str(50 * 2**20))
                self.end_headers()
                chunk = b"x" * 2**16
                try:
                    for _ in range(50 * 16):
                        self.wfile.write(chunk)
                except OSError:  # the sender stopped reading, as it should
                    pass
                return
            if isinstance(action, tuple):
                self.send_response(302)
                self.send_header("location", action[1])
                self.send_header("content-length", "0")
                self.end_headers()
                return
            self.send_response(int(action))
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/skill-adapter"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


def wait_for(predicate: Any, *, timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (a generous deadline, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
