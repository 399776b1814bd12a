"""The two ASGI guards in front of the app: the token check (401) and the body limit (413).

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
from noetl.server.limits import BodyLimit


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


def request(app: Any, method: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, "/api/executions", **kwargs)

    return asyncio.run(go())


def test_a_mutation_without_the_token_gets_401_with_one_line_and_never_reaches_the_app() -> None:
    echo = Echo()
    guarded = TokenAuth(echo, "t0k")
    for headers in ({}, {"Authorization": "Bearer t0"}, {"Authorization": "t0k"}):
        response = request(guarded, "POST", json={"a": 1}, headers=headers)
        assert response.status_code == 401
        assert response.json() == {
            "detail": "missing or wrong API token: send Authorization: Bearer <NOETL_API_TOKEN>"
        }
        assert response.headers["content-type"] == "application/json"
        assert response.headers["www-authenticate"] == "Bearer"
        assert int(response.headers["content-length"]) == len(response.content)
        assert "t0k" not in response.text
    assert echo.calls == 0


def test_the_right_token_and_reads_pass_through() -> None:
    echo = Echo()
    guarded = TokenAuth(echo, "t0k")
    passed = request(guarded, "POST", content=b"{}", headers={"Authorization": "Bearer t0k"})
    assert (passed.status_code, passed.content) == (200, b"{}")
    assert request(guarded, "GET").status_code == 200
    assert request(TokenAuth(echo, None), "DELETE").status_code == 200  # no token set: open
    assert echo.calls == 3


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
