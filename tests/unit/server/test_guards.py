"""The ASGI guards in front of the app: the tokens (401/403), no GET body (400), the body limit (413).

Each wraps a tiny app that echoes what reached it, so a test sees both the refusal the client
gets (status, headers, the one-line ``{"detail": ...}`` body) and that the app was never called.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send

from noetl.server.auth import TokenAuth
from noetl.server.limits import BodyLimit, NoGetBody
from noetl.settings import load_settings


class Echo:
    """An ASGI app answering 200 with the body it received; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def request(app: Any, method: str, path: str = "/api/executions", **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def guard(echo: Echo, **env: str) -> TokenAuth:
    base = {"NOETL_API_TOKEN": "t0k", "NOETL_WORKER_TOKEN": "w0k", "NOETL_HOST": "127.0.0.1"}
    return TokenAuth(echo, load_settings({**base, **env}))


CLIENT = {"Authorization": "Bearer t0k"}
WORKER = {"Authorization": "Bearer w0k"}


def test_a_call_without_the_token_gets_401_with_one_line_and_never_reaches_the_app() -> None:
    echo = Echo()
    guarded = guard(echo)
    for method in ("POST", "GET", "DELETE"):
        for headers in ({}, {"Authorization": "Bearer t0"}, {"Authorization": "t0k"}):
            response = request(guarded, method, headers=headers)
            assert response.status_code == 401
            assert response.json() == {
                "detail": "missing or wrong API token: send Authorization: Bearer <NOETL_API_TOKEN>"
            }
            assert response.headers["content-type"] == "application/json"
            assert response.headers["www-authenticate"] == "Bearer"
            assert int(response.headers["content-length"]) == len(response.content)
            assert "t0k" not in response.text
    assert echo.calls == 0


def test_each_token_passes_on_its_own_routes_only() -> None:
    echo = Echo()
    guarded = guard(echo)
    passed = request(guarded, "POST", content=b"{}", headers=CLIENT)
    assert (passed.status_code, passed.content) == (200, b"{}")
    assert request(guarded, "GET", headers=CLIENT).status_code == 200
    assert request(guarded, "GET", "/api/workers", headers=CLIENT).status_code == 200  # the list: a read
    worker_calls = [
        ("POST", "/api/commands/c1/claim"),
        ("POST", "/api/commands/c1/heartbeat"),
        ("POST", "/api/commands/c1/events"),
        ("POST", "/api/commands/c1/release"),
        ("POST", "/api/commands/claims"),
        ("POST", "/api/commands/events"),
        ("POST", "/api/workers"),
        ("POST", "/api/workers/h:w:1/heartbeat"),
        ("DELETE", "/api/workers/h:w:1"),
    ]
    for method, path in worker_calls:
        assert request(guarded, method, path, headers=WORKER).status_code == 200, path
        refused = request(guarded, method, path, headers=CLIENT)
        assert refused.status_code == 403, path
        assert "NOETL_WORKER_TOKEN" in refused.json()["detail"]
    for method, path in (("GET", "/api/executions"), ("POST", "/api/executions"), ("GET", "/api/workers")):
        refused = request(guarded, method, path, headers=WORKER)
        assert refused.status_code == 403, path
        assert refused.json()["detail"] == (
            "the worker token may only call the worker routes; use NOETL_API_TOKEN"
        )
    assert echo.calls == 3 + len(worker_calls)


def test_probes_and_public_metrics_need_no_token() -> None:
    echo = Echo()
    for path in ("/api/health", "/api/ready", "/metrics"):
        assert request(guard(echo), "GET", path).status_code == 200, path
    assert request(guard(echo), "POST", "/api/health").status_code == 401  # only reads are open
    assert request(guard(echo, NOETL_METRICS_PUBLIC="false"), "GET", "/metrics").status_code == 401
    assert (
        request(guard(echo, NOETL_METRICS_PUBLIC="false"), "GET", "/metrics", headers=CLIENT).status_code
        == 200
    )
    assert echo.calls == 4


def test_auth_none_lets_everything_through_and_an_unset_token_matches_nothing() -> None:
    echo = Echo()
    assert request(guard(echo, NOETL_AUTH="none"), "DELETE").status_code == 200
    unset = TokenAuth(echo, load_settings({"NOETL_HOST": "127.0.0.1"}))  # fails closed
    assert request(unset, "GET").status_code == 401
    assert request(unset, "GET", headers={"Authorization": "Bearer "}).status_code == 401
    assert echo.calls == 1


def test_a_get_with_a_body_gets_400_and_never_reaches_the_app() -> None:
    echo = Echo()
    guarded = NoGetBody(echo)
    for method in ("GET", "HEAD"):
        refused = request(guarded, method, content=b'{"a": 1}')
        assert refused.status_code == 400
        if method == "GET":
            assert refused.json() == {
                "detail": "GET takes no request body; send the parameters in the query string"
            }

    async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length at all
        yield b"x"

    assert request(guarded, "GET", content=chunks()).status_code == 400
    assert echo.calls == 0
    assert request(guarded, "GET").status_code == 200
    assert request(guarded, "POST", content=b"{}").status_code == 200
    assert echo.calls == 2


def test_a_body_over_the_limit_gets_413_with_one_line_and_never_reaches_the_app() -> None:
    echo = Echo()
    limited = BodyLimit(echo, 10)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield b"x" * 6
        yield b"x" * 6

    for kwargs in ({"content": b"x" * 11}, {"content": chunks()}):
        response = request(limited, "POST", **kwargs)
        assert response.status_code == 413
        assert json.loads(response.content) == {
            "detail": "request body larger than 10 bytes (NOETL_MAX_BODY_BYTES)"
        }
        assert response.headers["content-type"] == "application/json"
        assert response.headers["connection"] == "close"
    assert echo.calls == 0


def test_a_body_at_the_limit_reaches_the_app_whole() -> None:
    echo = Echo()
    limited = BodyLimit(echo, 10)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"01234"
        yield b"56789"

    assert request(limited, "POST", content=chunks()).content == b"0123456789"
    assert request(limited, "POST", content=b"short").content == b"short"
    assert echo.calls == 2
