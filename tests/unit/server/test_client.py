"""ApiClient maps every failure to a one-line NoetlError; wait() rides out short outages."""

from __future__ import annotations

import httpx
import pytest

from noetl.client import ApiClient, ApiError
from noetl.client.api import WAIT_OUTAGE_TOLERANCE
from noetl.errors import ConfigError, NoetlError, ServerUnavailableError


def client_answering(status: int, body: object) -> ApiClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return ApiClient("http://noetl.test", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "error", "exit_code"),
    [
        (401, ConfigError, 2),
        (422, ConfigError, 2),
        (413, ConfigError, 2),
        (404, ApiError, 1),
        (409, ApiError, 1),
        (503, ServerUnavailableError, 4),
        (500, ServerUnavailableError, 4),
    ],
)
def test_status_codes_map_to_errors(status: int, error: type[NoetlError], exit_code: int) -> None:
    with pytest.raises(error) as caught:
        client_answering(status, {"detail": "why"}).execution("e1")
    assert caught.value.exit_code == exit_code
    assert "why" in str(caught.value)


def test_unreachable_server_names_the_setting() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused")

    client = ApiClient("http://noetl.test:1", transport=httpx.MockTransport(refuse))
    with pytest.raises(ServerUnavailableError, match="NOETL_SERVER_URL"):
        client.submit({"tool": {}})


def test_token_is_sent_as_bearer() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(201, json={"execution_id": "e", "command_id": "c"})

    ApiClient("http://noetl.test", token="tok", transport=httpx.MockTransport(handler)).submit({})
    assert seen == ["Bearer tok"]


def test_wait_polls_until_finished_through_a_short_outage() -> None:
    answers = [
        httpx.Response(200, json={"status": "RUNNING"}),
        httpx.Response(503, json={"detail": "the database is unavailable; retry later"}),
        httpx.Response(200, json={"status": "RUNNING"}),
        httpx.Response(200, json={"status": "COMPLETED"}),
    ]
    client = ApiClient("http://noetl.test", transport=httpx.MockTransport(lambda _: answers.pop(0)))
    sleeps: list[float] = []
    assert client.wait("e1", sleep=sleeps.append, clock=lambda: 0.0)["status"] == "COMPLETED"
    assert len(sleeps) == 3
    assert sleeps == sorted(sleeps)  # backing off


def test_wait_gives_up_after_a_long_outage() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += 10

    client = client_answering(503, {"detail": "down"})
    with pytest.raises(ServerUnavailableError):
        client.wait("e1", sleep=sleep, clock=lambda: now[0])
    assert now[0] > WAIT_OUTAGE_TOLERANCE
