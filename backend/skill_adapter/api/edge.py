"""The browser-safe edge: the Host header check, cross-site refusal and CORS (docs/security.md).

- ``Host`` must name this server (``SKILL_ADAPTER_ALLOWED_HOSTS``, loopback names by default), else 400
  ``host_not_allowed``: a page on ``evil.example`` whose name was re-pointed at 127.0.0.1 (DNS rebinding)
  sends ``Host: evil.example`` and gets nothing.
- A state-changing request (POST, PUT, PATCH, DELETE) to ``/api`` or ``/v1`` that a browser sent (it carries
  ``Origin`` or ``Sec-Fetch-Site``) must come from this server's own origin or one listed in
  ``SKILL_ADAPTER_CORS_ORIGINS``, and must carry ``Authorization`` or ``X-Skill-Adapter-Client`` (the
  dashboard sends it): a browser adds either header to a cross-site request only after a CORS preflight,
  which no unlisted origin passes. So a cross-site form, multipart or ``text/plain`` POST changes nothing
  (403 ``cross_site_refused``). Programs (curl, the CLI, SDKs) send neither marker and are not affected.
- CORS: closed unless ``SKILL_ADAPTER_CORS_ORIGINS`` lists origins (see :func:`install_edge`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from skill_adapter.api.errors import error_response
from skill_adapter.core.config import Settings

CLIENT_HEADER = "X-Skill-Adapter-Client"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
GUARDED_PREFIXES = ("/api/", "/v1/")


def host_name(host: str) -> str:
    """The name part of a Host header: ``[::1]:8000`` -> ``::1``, ``Example.COM.:80`` -> ``example.com``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


class Edge:
    """Pure ASGI middleware (no per-request objects beyond a header dict): cheap on the /status path."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: frozenset[str], cors_origins: list[str]) -> None:
        self.app = app
        self.any_host = "*" in allowed_hosts
        self.allowed_hosts = allowed_hosts
        self.cors_origins = frozenset(origin.lower() for origin in cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        host = headers.get("host", "")
        if not self.any_host and host_name(host) not in self.allowed_hosts:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            response = error_response(
                400,
                "host_not_allowed",
                f"This server does not answer to the host {host!r}; the operator lists the names it answers to "
                "in SKILL_ADAPTER_ALLOWED_HOSTS",
            )
            await response(scope, receive, send)
            return
        if scope["type"] == "http" and scope["method"] in STATE_CHANGING and scope["path"].startswith(GUARDED_PREFIXES):
            problem = self.cross_site_problem(headers, host)
            if problem is not None:
                await error_response(403, "cross_site_refused", problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def cross_site_problem(self, headers: dict[str, str], host: str) -> str | None:
        """Why a browser's state-changing request is refused, or None to let it through."""
        origin = headers.get("origin")
        fetch_site = headers.get("sec-fetch-site")
        if origin is None and fetch_site is None:
            return None  # not sent by a web page: curl, the CLI, an SDK
        if origin is not None:
            same = origin != "null" and urlsplit(origin).netloc.lower() == host.strip().lower()
            if not same and origin.lower().rstrip("/") not in self.cors_origins:
                return (
                    f"A page on {origin} may not change anything here; the operator lists the origins that may in "
                    "SKILL_ADAPTER_CORS_ORIGINS"
                )
        elif fetch_site in ("cross-site", "same-site"):
            return "A page on another site may not change anything here"
        if "authorization" not in headers and CLIENT_HEADER.lower() not in headers:
            return (
                f"A browser's request that changes something must carry the Authorization or {CLIENT_HEADER} header "
                "(the dashboard sends it); a plain form post is refused"
            )
        return None


def install_edge(app: FastAPI, settings: Settings) -> None:
    """CORS (only for the listed origins), then the Host and cross-site checks outside it."""
    origins = settings.cors_origin_list
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", CLIENT_HEADER, "Last-Event-ID"],
            expose_headers=["Retry-After", "Idempotent-Replayed"],
            allow_credentials=False,  # keys travel in Authorization, never in cookies
            max_age=600,
        )
    app.add_middleware(Edge, allowed_hosts=settings.allowed_host_names, cors_origins=origins)
