"""Bearer tokens on every route but the probes: the client's token, and the workers' narrower one.

A pure ASGI middleware rather than a route dependency, so that an unauthenticated request is
refused before its body is read or validated, and no route can forget it (a route added later is a
client route until ``WORKER_ROUTES`` says otherwise). Tokens are compared in constant time and
never logged.

- ``/api/health`` and ``/api/ready`` answer anyone (probes); so does ``/metrics`` (counts only)
  while ``NOETL_METRICS_PUBLIC`` is true.
- The worker routes (claim, lease heartbeat, events, release, their batches, the worker registry) take only
  ``NOETL_WORKER_TOKEN``; every other route takes only ``NOETL_API_TOKEN``. The right kind of
  token on the wrong kind of route is 403; no token or an unknown one is 401.
- ``NOETL_AUTH=none`` lets everything through (settings refuse it off loopback).
"""

from __future__ import annotations

import hmac
import re

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from noetl.settings import Settings

PROBES = frozenset({"/api/health", "/api/ready"})
METRICS = "/metrics"
# (method, path) of the calls a worker makes, and nothing else.
WORKER_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("POST", re.compile(r"^/api/commands/[^/]+/(claim|heartbeat|events|release)$")),
    ("POST", re.compile(r"^/api/commands/(claims|events)$")),  # their batches
    ("POST", re.compile(r"^/api/workers$")),
    ("POST", re.compile(r"^/api/workers/[^/]+/heartbeat$")),
    ("DELETE", re.compile(r"^/api/workers/[^/]+$")),
)


def is_worker_route(method: str, path: str) -> bool:
    """Whether this call is one of the worker routes (the worker token's, and only those)."""
    return any(method == m and pattern.match(path) for m, pattern in WORKER_ROUTES)


def is_open(method: str, path: str, metrics_public: bool) -> bool:
    """Whether this call needs no token at all."""
    if method not in ("GET", "HEAD"):
        return False
    return path in PROBES or (metrics_public and path == METRICS)


def _bearer(token: str | None) -> bytes | None:
    return f"Bearer {token}".encode() if token else None


class TokenAuth:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.enabled = settings.auth != "none"
        self.metrics_public = settings.metrics_public
        # A token that is not set matches nothing: the server fails closed.
        self.client = _bearer(settings.api_token)
        self.worker = _bearer(settings.worker_token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if is_open(method, path, self.metrics_public):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        as_client = self.client is not None and hmac.compare_digest(given, self.client)
        as_worker = self.worker is not None and hmac.compare_digest(given, self.worker)
        worker_route = is_worker_route(method, path)
        if (as_worker and worker_route) or (as_client and not worker_route):
            await self.app(scope, receive, send)
            return
        if as_client:
            status, detail = 403, "this is a worker route: it takes NOETL_WORKER_TOKEN, not the API token"
        elif as_worker:
            status, detail = 403, "the worker token may only call the worker routes; use NOETL_API_TOKEN"
        else:
            status, detail = 401, "missing or wrong API token: send Authorization: Bearer <NOETL_API_TOKEN>"
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        await JSONResponse({"detail": detail}, status_code=status, headers=headers)(scope, receive, send)
