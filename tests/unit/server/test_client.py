"""ApiClient maps every failure to a one-line NoetlError; wait() rides out short outages."""

from __future__ import annotations

import httpx
import pytest

from noetl.client import ApiClient, ApiRejected, AuthRejected, ServerUnreachable
from noetl.client.api import WAIT_OUTAGE_TOLERANCE
from noetl.errors import NoetlError


def client_answering(status: int, body: object) -> ApiClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return ApiClient("http://noetl.test/", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "error", "exit_code", "message"),
    [
        (
            401,
            AuthRejected,
            2,
            "the server refused the API token (401): why; set NOETL_API_TOKEN to the token",
        ),
        (
            403,
            AuthRejected,
            2,
            "the server refused the API token (403): why; set NOETL_API_TOKEN to the token",
        ),
        (400, ApiRejected, 2, "the server refused the request: why"),
        (422, ApiRejected, 2, "the server refused the request: why"),
        (413, ApiRejected, 2, "the server refused the request: why"),
        (405, ApiRejected, 1, "the server refused the request: why"),
        (404, ApiRejected, 1, "why"),
        (409, ApiRejected, 1, "why"),
        (503, ServerUnreachable, 4, "the server at http://noetl.test answered 503: why"),
        (500, ServerUnreachable, 4, "the server at http://noetl.test answered 500: why"),
    ],
)
def test_status_codes_map_to_one_line_errors(
    status: int, error: type[NoetlError], exit_code: int, message: str
) -> None:
    with pytest.raises(error) as caught:
        client_answering(status, {"detail": "why"}).execution("e1")
    assert caught.value.exit_code == exit_code
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_body_without_detail_is_shown_short() -> None:
    with pytest.raises(ServerUnreachable) as caught:
        client_answering(502, ["x" * 1000]).execution("e1")
    assert len(str(caught.value)) < 300


def test_unreachable_server_names_the_setting() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused")

    client = ApiClient("http://noetl.test:1", transport=httpx.MockTransport(refuse))
    with pytest.raises(ServerUnreachable) as caught:
        client.submit({"tool": {}})
    assert str(caught.value) == (
        "cannot reach the NoETL server at http://noetl.test:1 (ConnectError: Connection refused): "
        "start it (`noetl run`) or set NOETL_SERVER_URL"
    )
    assert caught.value.exit_code == 4


def test_token_is_sent_as_bearer_and_no_header_without_one() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(201, json={"execution_id": "e", "command_id": "c"})

    ApiClient("http://noetl.test", token="tok", transport=httpx.MockTransport(handler)).submit({})
    ApiClient("http://noetl.test", transport=httpx.MockTransport(handler)).submit({})
    assert seen == ["Bearer tok", None]


def test_wait_polls_until_finished_through_a_short_outage() -> None:
    answers = [
        httpx.Response(200, json={"status": "RUNNING"}),
        httpx.Response(503, json={"detail": "the database is unavailable; retry later"}),
        httpx.Response(200, json={"status": "RUNNING"}),
        httpx.Response(200, json={"status": "RUNNING"}),
        httpx.Response(200, json={"status": "RUNNING"}),
        httpx.Response(200, json={"status": "RUNNING"}),
        httpx.Response(200, json={"status": "RUNNING"}),
        httpx.Response(200, json={"status": "COMPLETED"}),
    ]
    client = ApiClient("http://noetl.test", transport=httpx.MockTransport(lambda _: answers.pop(0)))
    sleeps: list[float] = []
    assert client.wait("e1", sleep=sleeps.append, clock=lambda: 0.0)["status"] == "COMPLETED"
    # Soon at first, then slower, never more than a second apart.
    assert sleeps == pytest.approx([0.1, 0.15, 0.225, 0.3375, 0.50625, 0.759375, 1.0])


def test_wait_gives_up_after_a_long_outage() -> None:
    now = [0.0]
    calls = [0]

    def sleep(seconds: float) -> None:
        now[0] += 10

    def down(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        return httpx.Response(503, json={"detail": "down"})

    client = ApiClient("http://noetl.test", transport=httpx.MockTransport(down))
    with pytest.raises(ServerUnreachable, match="answered 503: down"):
        client.wait("e1", sleep=sleep, clock=lambda: now[0])
    assert now[0] > WAIT_OUTAGE_TOLERANCE
    assert calls[0] == 5  # at 0, 10, 20, 30 (still tolerated) and 40 (over 30 s: given up)


def test_wait_does_not_retry_a_refusal() -> None:
    calls = [0]

    def gone(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        return httpx.Response(404, json={"detail": "no execution e1"})

    client = ApiClient("http://noetl.test", transport=httpx.MockTransport(gone))
    with pytest.raises(ApiRejected, match=r"^no execution e1$"):
        client.wait("e1", sleep=lambda _: None)
    assert calls[0] == 1
