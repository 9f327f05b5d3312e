"""Read timeouts for the HTTP server: a client that stalls while sending a request loses its connection.

uvicorn closes idle keep-alive connections, but has no deadline for reading a request: a connection that
sends nothing, half its headers, or fewer body bytes than its Content-Length stays open for good, and
enough of them exhaust the server's sockets and memory (slowloris). This protocol, uvicorn's httptools one
plus two deadlines, closes such connections:

- the request line and headers must arrive within ``timeout`` seconds of the connection (or of the first
  byte of the next request on a kept-alive connection);
- while the body is being sent, no more than ``timeout`` seconds may pass without a byte arriving.

Once a request is read the app has it; slow answers are the app's business, not the client's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with read deadlines for the headers and the body (see the module)."""

    read_timeout: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._read_deadline = self.loop.call_later(self.read_timeout, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        if self.transport is None or self.transport.is_closing():
            return
        if self.flow is not None and self.flow.read_paused:  # we stopped reading (the app is behind): not theirs
            self._arm()
            return
        self.logger.info(
            "closing a connection from %s: the request was not sent within %g s", self.client, self.read_timeout
        )
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # the headers' deadline, from the request's first byte

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if not self.transport.is_closing():
            self._arm()  # the body's idle deadline

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._arm()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()


def guarded_protocol(read_timeout: float) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to give uvicorn's ``http`` option, with these deadlines."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"read_timeout": float(read_timeout)})
