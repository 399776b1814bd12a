"""Wrong tokens at the login form are counted per client address: the eleventh within a minute is
refused with 429 and Retry-After, the right token included, while other addresses log in."""

from __future__ import annotations

import asyncio

import httpx

from noetl.server.app import create_app
from noetl.server.ui.attempts import MAX_CLIENTS, MAX_FAILURES, WINDOW, LoginAttempts
from noetl.settings import load_settings
from tests.auth import CLIENT_TOKEN, TOKEN_ENV
from tests.unit.clock import FakeClock


def test_the_window_counts_failures_per_address_and_a_success_clears_them() -> None:
    clock = FakeClock(1000.0)
    attempts = LoginAttempts(clock)
    for _ in range(MAX_FAILURES - 1):
        attempts.failed("10.0.0.1")
    assert attempts.retry_after("10.0.0.1") is None  # nine: may still try
    clock.now += 5
    attempts.failed("10.0.0.1")
    assert attempts.retry_after("10.0.0.1") == WINDOW - 5  # until the first failure is a minute old
    assert attempts.retry_after("10.0.0.2") is None  # another address is not affected
    clock.now += WINDOW - 5
    assert attempts.retry_after("10.0.0.1") is None  # the first nine left the window
    attempts.failed("10.0.0.1")
    assert attempts.retry_after("10.0.0.1") is None  # two in the window now, not ten
    attempts.succeeded("10.0.0.1")
    for _ in range(MAX_FAILURES - 1):
        attempts.failed("10.0.0.1")
    assert attempts.retry_after("10.0.0.1") is None  # the success started the count again


def test_memory_is_bounded_by_forgetting_the_least_recent_address() -> None:
    attempts = LoginAttempts(FakeClock())
    for _ in range(MAX_FAILURES):
        attempts.failed("first")
    assert attempts.retry_after("first") is not None
    for n in range(MAX_CLIENTS):
        attempts.failed(f"10.{n}")
    assert attempts.retry_after("first") is None  # forgotten: the oldest of MAX_CLIENTS + 1
    assert len(attempts._failures) == MAX_CLIENTS


def test_the_login_form_refuses_an_address_after_too_many_wrong_tokens() -> None:
    settings = load_settings({"POSTGRES_HOST": "127.0.0.1", "NOETL_ENABLE_UI": "true", **TOKEN_ENV})
    app = create_app(settings)
    origin = {"Origin": "http://test"}

    async def login(client_address: str, token: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client_address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/ui/login", data={"token": token, "next": "/"}, headers=origin)

    async def scenario() -> None:
        wrong = [await login("203.0.113.7", f"guess-{n}") for n in range(MAX_FAILURES)]
        assert [r.status_code for r in wrong] == [401] * MAX_FAILURES
        refused = await login("203.0.113.7", CLIENT_TOKEN)  # even the right one, now
        assert refused.status_code == 429
        assert 0 < int(refused.headers["retry-after"]) <= WINDOW
        assert "too many wrong tokens from 203.0.113.7" in refused.text
        assert "noetl_session" not in refused.headers.get("set-cookie", "")
        other = await login("198.51.100.9", CLIENT_TOKEN)
        assert other.status_code == 303 and "noetl_session=" in other.headers["set-cookie"]

    asyncio.run(scenario())
