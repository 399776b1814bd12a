"""The worker's API client: what is retried, what is an answer, what ends the worker.

The server side is a scripted HTTP server on 127.0.0.1 (``tests.unit.http_stub``; the real API
server is exercised by the integration tests); the clock and sleep are fakes, so backoff is
checked without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator

import httpx
import pytest

from noetl.errors import EXIT_CONFIG
from noetl.worker.api import ApiRejected, AuthRejected, Claim, ServerApi, ServerUnreachable
from tests.unit.clock import FakeClock
from tests.unit.http_stub import serving

CLAIMED = {
    "command_id": "c1",
    "execution_id": "e1",
    "attempt": 2,
    "lease": "lease-secret-2",
    "tool": {"kind": "shell", "command": "true"},
    "timeout": 5,
    "lease_until": "2030-01-01T00:00:00Z",
}

CLAIM = Claim("c1", "e1", 1, "lease-secret-1", {"kind": "shell", "command": "true"}, 5.0, None)


_servers = contextlib.ExitStack()


@pytest.fixture(autouse=True)
def _stop_servers() -> Iterator[None]:
    with _servers:
        yield


def client(
    handler: Callable[[httpx.Request], httpx.Response], clock: FakeClock, token: str | None = None
) -> ServerApi:
    server = _servers.enter_context(serving(handler))
    return ServerApi(server.url, token, sleep=clock.sleep, clock=clock)


def scripted(*answers: httpx.Response | Exception) -> tuple[Callable[[httpx.Request], httpx.Response], list]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler, seen


def test_claim_returns_the_lease_and_sends_worker_and_lease() -> None:
    async def scenario() -> None:
        handler, seen = scripted(httpx.Response(200, json=CLAIMED))
        api = client(handler, FakeClock(), token="s3cret")
        claim = await api.claim("c1", "w1", 30.0, until=None)
        assert claim is not None and claim.attempt == 2 and claim.timeout == 5.0
        assert claim.lease == "lease-secret-2"
        assert claim.tool == {"kind": "shell", "command": "true"}
        assert seen[0].url.path == "/api/commands/c1/claim"
        sent = json.loads(seen[0].content)
        assert {k: v for k, v in sent.items() if k != "request_id"} == {
            "worker_id": "w1",
            "lease_seconds": 30.0,
            "start": True,  # the server records `started` with the claim
        }
        assert claim.started is False  # this answer does not say it did: the worker reports it
        assert len(sent["request_id"]) == 32  # random per claim: its retry gets the same lease back
        assert seen[0].headers["authorization"] == "Bearer s3cret"
        await api.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("status", [404, 409])
def test_claim_conflict_or_unknown_is_an_answer(status: int) -> None:
    async def scenario() -> None:
        handler, seen = scripted(httpx.Response(status, json={"detail": "held by another worker"}))
        api = client(handler, FakeClock())
        assert await api.claim("c1", "w1", 30.0, until=None) is None
        assert len(seen) == 1  # not retried

    asyncio.run(scenario())


def test_503_and_connection_errors_are_retried_with_growing_capped_backoff() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        handler, seen = scripted(
            httpx.ConnectError("refused"),
            *[httpx.Response(503, json={"detail": "database unavailable"})] * 7,
            httpx.Response(500, text="oops"),
            httpx.Response(200, json={"stored": True}),
        )
        api = client(handler, clock)
        assert await api.event(CLAIM, "w1", "completed", {"result": 1}, 1, until=None) is True
        assert len(seen) == 10
        assert clock.sleeps[0] == pytest.approx(0.1)
        assert clock.sleeps == sorted(clock.sleeps)
        assert max(clock.sleeps) == 2.0

    asyncio.run(scenario())


def test_retrying_is_logged_when_the_problem_starts_or_changes_and_every_5s_while_it_lasts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        handler, _ = scripted(
            httpx.ConnectError("refused"),  # t=0
            *[httpx.Response(503, json={"detail": "database unavailable"})] * 7,  # t=0.1 .. 7.1
            httpx.Response(500, text="oops"),  # t=9.1
            httpx.Response(200, json={"stored": True}),
        )
        api = client(handler, clock)
        urls.append(api.base_url)
        with caplog.at_level(logging.WARNING, logger="noetl.worker"):
            assert await api.event(CLAIM, "w1", "completed", {}, 1, until=None) is True

    urls: list[str] = []
    asyncio.run(scenario())
    cut = "the server closed the connection before its answer was complete"
    assert [r.getMessage() for r in caplog.records] == [
        f"server {urls[0]} not answering ({cut}); retrying",
        f"server {urls[0]} not answering (503 database unavailable); retrying",
        f"server {urls[0]} not answering (503 database unavailable); retrying",  # t=5.1
        f"server {urls[0]} not answering (500 oops); retrying",
    ]


def test_retries_stop_at_the_deadline() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        handler, seen = scripted(httpx.ConnectError("refused"))
        api = client(handler, clock)
        with pytest.raises(ServerUnreachable, match="closed the connection"):
            await api.heartbeat(CLAIM, "w1", 30.0, until=5.0)
        assert clock.now <= 5.0
        assert len(seen) > 3

    asyncio.run(scenario())


def test_lost_lease_is_false_not_an_error() -> None:
    async def scenario() -> None:
        handler, _ = scripted(httpx.Response(409, json={"detail": "lease lost"}))
        api = client(handler, FakeClock())
        assert await api.heartbeat(CLAIM, "w1", 30.0, until=None) is False
        assert await api.event(CLAIM, "w1", "completed", {}, 1, until=None) is False
        assert await api.release(CLAIM, "w1", until=None) is False

    asyncio.run(scenario())


def test_a_refused_token_ends_the_worker_with_the_config_exit_code() -> None:
    async def scenario() -> None:
        handler, seen = scripted(httpx.Response(401, json={"detail": "missing or wrong token"}))
        api = client(handler, FakeClock(), token="s3cret-worker-token")
        with pytest.raises(AuthRejected, match="NOETL_WORKER_TOKEN") as info:
            await api.register({"worker_id": "w1"}, until=None)
        assert info.value.exit_code == EXIT_CONFIG
        assert str(info.value).startswith("the server refused the worker's token (401): missing or wrong")
        assert "s3cret" not in str(info.value)  # the token is never repeated
        assert len(seen) == 1

    asyncio.run(scenario())


def test_other_client_errors_carry_the_servers_detail() -> None:
    async def scenario() -> None:
        handler, _ = scripted(httpx.Response(413, json={"detail": "request body over 1048576 bytes"}))
        api = client(handler, FakeClock())
        with pytest.raises(ApiRejected) as info:
            await api.event(CLAIM, "w1", "completed", {"result": "x" * 10}, 1, until=None)
        assert info.value.status == 413
        assert "1048576" in info.value.detail

    asyncio.run(scenario())


def test_worker_ids_are_escaped_in_paths() -> None:
    async def scenario() -> None:
        handler, seen = scripted(httpx.Response(404, json={"detail": "unknown worker"}))
        api = client(handler, FakeClock())
        assert await api.worker_heartbeat("host:worker_00:12", ["c1"], until=None) is False
        assert seen[0].url.raw_path == b"/api/workers/host%3Aworker_00%3A12/heartbeat"
        assert json.loads(seen[0].content) == {"running": ["c1"]}

    asyncio.run(scenario())
