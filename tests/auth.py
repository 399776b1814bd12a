"""The tokens every test stack runs with, and an httpx auth that sends the right one per route.

Auth is on by default, so every fixture's server gets these two tokens and every fixture client
sends the worker token on the worker routes and the client token elsewhere, the way the worker
and the CLI do. Tests about auth itself build their own clients.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx

from noetl.server.auth import is_worker_route

CLIENT_TOKEN = "test-client-token-0123456789"
WORKER_TOKEN = "test-worker-token-9876543210"
TOKEN_ENV = {"NOETL_API_TOKEN": CLIENT_TOKEN, "NOETL_WORKER_TOKEN": WORKER_TOKEN}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class RouteAuth(httpx.Auth):
    """The worker token on the worker routes, the client token on every other one."""

    def __init__(self, client: str = CLIENT_TOKEN, worker: str = WORKER_TOKEN) -> None:
        self.client = client
        self.worker = worker

    @classmethod
    def of(cls, env: dict[str, str]) -> RouteAuth:
        """The tokens an environment gives its programs (the test ones unless it sets others)."""
        return cls(env.get("NOETL_API_TOKEN", CLIENT_TOKEN), env.get("NOETL_WORKER_TOKEN", WORKER_TOKEN))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        worker = is_worker_route(request.method, request.url.path)
        request.headers["Authorization"] = f"Bearer {self.worker if worker else self.client}"
        yield request
