"""The worker's HTTP client (``noetl.client.wire``) against real sockets: keep-alive, a connection
the server closed while it was idle, chunked and connection-delimited answers, timeouts, refusals."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from noetl.client.wire import NoAnswer, WireClient
from tests.unit.http_stub import serving


def echo(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "method": request.method,
            "path": request.url.path,
            "body": json.loads(request.content) if request.content else None,
            "authorization": request.headers.get("authorization"),
            "content_type": request.headers.get("content-type"),
        },
    )


def test_requests_share_one_kept_alive_connection_and_carry_json_and_headers() -> None:
    async def scenario(url: str) -> list[dict[str, object]]:
        client = WireClient(url, {"Authorization": "Bearer t0k"})
        try:
            answers = [
                await client.request("POST", "/api/x", json={"n": i, "s": "é"}, timeout=5) for i in range(5)
            ]
            answers.append(await client.request("GET", "/api/y", timeout=5))
        finally:
            await client.aclose()
        assert all(a.status_code == 200 for a in answers)
        return [a.json() for a in answers]

    with serving(echo) as server:
        answers = asyncio.run(scenario(server.url))
        assert server.connections == 1
    assert [a["body"] for a in answers] == [{"n": i, "s": "é"} for i in range(5)] + [None]
    assert answers[0]["method"] == "POST" and answers[0]["path"] == "/api/x"
    assert answers[0]["content_type"] == "application/json"
    assert answers[-1]["method"] == "GET" and answers[-1]["content_type"] is None
    assert {a["authorization"] for a in answers} == {"Bearer t0k"}


def test_concurrent_requests_each_get_their_own_answer() -> None:
    async def scenario(url: str) -> list[object]:
        client = WireClient(url)
        try:
            answers = await asyncio.gather(
                *(client.request("POST", f"/api/{i}", json=i, timeout=5) for i in range(8))
            )
        finally:
            await client.aclose()
        return [(a.json()["path"], a.json()["body"]) for a in answers]

    with serving(echo) as server:
        assert asyncio.run(scenario(server.url)) == [(f"/api/{i}", i) for i in range(8)]
        assert 1 <= server.connections <= 8


def test_a_connection_the_server_closed_while_idle_is_replaced_and_the_request_sent_once() -> None:
    calls: list[str] = []

    def counted(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return echo(request)

    async def scenario(url: str) -> list[int]:
        client = WireClient(url)
        try:
            first = await client.request("POST", "/api/1", json=1, timeout=5)
            await asyncio.sleep(0.2)  # the server closes the connection meanwhile (no Connection: close)
            second = await client.request("POST", "/api/2", json=2, timeout=5)
        finally:
            await client.aclose()
        return [first.json()["body"], second.json()["body"]]

    with serving(counted) as server:
        server.drop_after_answer = True
        assert asyncio.run(scenario(server.url)) == [1, 2]
        assert server.connections == 2
    assert calls == ["/api/1", "/api/2"]  # each handled exactly once


def test_connection_close_is_honoured() -> None:
    def closing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": True}, headers={"Connection": "close"})

    async def scenario(url: str) -> None:
        client = WireClient(url)
        try:
            for _ in range(3):
                assert (await client.request("GET", "/", timeout=5)).json() == {"ok": True}
        finally:
            await client.aclose()

    with serving(closing) as server:
        asyncio.run(scenario(server.url))
        assert server.connections == 3


RAW_ANSWERS = {
    "chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4\r\n{"a"\r\n6;ext=1\r\n: [1, \r\n3\r\n2]}\r\n0\r\nX-Trailer: y\r\n\r\n'
    ),
    "until-close": b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"a": [1, 2]}',
}


@pytest.mark.parametrize("kind", sorted(RAW_ANSWERS))
def test_chunked_and_connection_delimited_answers_are_read_whole(kind: str) -> None:
    async def scenario() -> object:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(RAW_ANSWERS[kind])
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = WireClient(f"http://127.0.0.1:{port}")
        try:
            return (await client.request("GET", "/", timeout=5)).json()
        finally:
            await client.aclose()
            server.close()

    assert asyncio.run(scenario()) == {"a": [1, 2]}


def test_no_answer_in_time_raises_no_answer() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        time.sleep(1.0)
        return echo(request)

    async def scenario(url: str) -> None:
        client = WireClient(url)
        try:
            with pytest.raises(NoAnswer, match=r"no answer within 0.2s"):
                await client.request("GET", "/", timeout=0.2)
        finally:
            await client.aclose()

    with serving(slow) as server:
        asyncio.run(scenario(server.url))


def test_a_refused_connection_and_a_garbled_answer_raise_no_answer() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens on it

    async def refused() -> None:
        with pytest.raises(NoAnswer, match="ConnectionRefusedError"):
            await WireClient(f"http://127.0.0.1:{port}").request("GET", "/", timeout=5)

    asyncio.run(refused())

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def garble() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")

        thread = threading.Thread(target=garble, daemon=True)
        thread.start()

        async def garbled() -> None:
            url = f"http://127.0.0.1:{listener.getsockname()[1]}"
            with pytest.raises(NoAnswer, match="not an HTTP answer"):
                await WireClient(url).request("GET", "/", timeout=5)

        asyncio.run(garbled())
        thread.join(5)


def test_a_path_prefix_in_the_base_url_is_kept_and_bad_urls_are_refused() -> None:
    async def scenario(url: str) -> object:
        client = WireClient(url + "/noetl/")
        try:
            return (await client.request("GET", "/api/executions/e1", timeout=5)).json()["path"]
        finally:
            await client.aclose()

    with serving(echo) as server:
        assert asyncio.run(scenario(server.url)) == "/noetl/api/executions/e1"
    with pytest.raises(ValueError, match="not an http"):
        WireClient("ftp://h/")


def test_the_worker_does_not_import_httpx() -> None:
    """What a worker loads to serve (``noetl.worker.run``) reaches the server through ``wire``:
    httpx (~100 ms of imports and several MiB) is for the CLI and the http tool only."""
    probe = "import sys, noetl.worker.run; print(sorted(m for m in sys.modules if m.startswith('httpx')))"
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
