"""The CLI's and the worker's clients share one reading of the API's answers: a status means the
same error, with the same exit code and the same line, whichever of the two got it."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest

from noetl.client import ApiClient
from noetl.client.session import ApiRejected, AuthRejected, Endpoint, ServerUnreachable
from noetl.errors import NoetlError
from noetl.worker.api import Claim, ServerApi
from tests.unit.http_stub import serving

# Every status the server can answer with an error, and one it never sends.
STATUSES = [400, 401, 403, 405, 413, 422, 429, 500, 502, 503, 504]


def answer(_: httpx.Request, status: int = 0) -> httpx.Response:
    return httpx.Response(status, json={"detail": "the server's reason"})


def cli_error(url: str) -> NoetlError:
    with pytest.raises(NoetlError) as caught:
        ApiClient(url).execution("e1")
    return caught.value


def worker_error(url: str) -> NoetlError:
    async def call() -> None:
        async def no_sleep(_: float) -> None:
            return None

        api = ServerApi(url, sleep=no_sleep, clock=lambda: 0.0)
        try:
            claim = Claim("c1", "e1", 1, "secret", {}, 1.0, None)
            await api.release(claim, "w1", until=0.0)  # no time to retry
        finally:
            await api.close()

    with pytest.raises(NoetlError) as caught:
        asyncio.run(call())
    return caught.value


@pytest.mark.parametrize("status", STATUSES)
def test_both_clients_raise_the_same_error_for_a_status(status: int) -> None:
    # Both talk to the same real server: the CLI through httpx, the worker through noetl.client.wire.
    with serving(lambda request: answer(request, status)) as server:
        cli, worker = cli_error(server.url), worker_error(server.url)
    assert type(cli) is type(worker)
    assert isinstance(cli, (ApiRejected, AuthRejected, ServerUnreachable))
    assert cli.exit_code == worker.exit_code
    # Only whose token a 401/403 refused differs: each names it as its user knows it.
    as_worker = (
        str(cli).replace("API token", "worker's token").replace("NOETL_API_TOKEN", "NOETL_WORKER_TOKEN")
    )
    assert as_worker == str(worker)
    assert "the server's reason" in str(cli)


def test_the_two_clients_differ_only_in_404_and_409_being_answers_for_the_worker() -> None:
    async def heartbeat(url: str) -> object:
        api = ServerApi(url)
        claim = Claim("c1", "e1", 1, "lease-secret", {"kind": "shell", "command": "true"}, 5.0, None)
        try:
            return await api.heartbeat(claim, "w1", 30.0, until=None)
        finally:
            await api.close()

    for status in (404, 409):
        with serving(lambda request, status=status: answer(request, status)) as server:
            assert asyncio.run(heartbeat(server.url)) is False  # an answer: the lease is gone
            error = cli_error(server.url)
        assert isinstance(error, ApiRejected) and error.status == status
        assert str(error) == "the server's reason" and error.exit_code == 1


@pytest.mark.parametrize(
    ("base_url", "shown"),
    [
        ("http://h:8082/", "http://h:8082"),
        ("http://h:8082", "http://h:8082"),
        ("https://h/noetl/", "https://h/noetl"),
    ],
)
def test_the_base_url_is_shown_without_a_trailing_slash(base_url: str, shown: str) -> None:
    endpoint = Endpoint(base_url, None, "API token")
    error = endpoint.unreachable(httpx.ConnectError(""))
    assert str(error).startswith(f"cannot reach the NoETL server at {shown} (ConnectError): ")
    assert error.reason == "ConnectError"
    assert endpoint.client_options()["headers"] == {}


def test_a_path_prefix_in_the_base_url_is_kept() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={"status": "pending"})

    ApiClient("https://h/noetl/", transport=httpx.MockTransport(handler)).execution("e1")
    assert seen == ["/noetl/api/executions/e1"]


def test_tls_is_verified_for_https_and_not_set_up_for_http() -> None:
    # An http:// server needs no TLS context (building httpx's default one costs ~20 ms of CPU).
    assert Endpoint("http://127.0.0.1:8082", None, "API token").client_options()["verify"] is False
    assert "verify" not in Endpoint("https://noetl.example", None, "API token").client_options()
    with httpx.Client(**Endpoint("https://noetl.example", None, "API token").client_options()) as client:
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert pool._ssl_context.verify_mode == ssl.CERT_REQUIRED
