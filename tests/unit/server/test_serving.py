"""The server's uvicorn stops as soon as it is told to (in this process, on a loopback socket).

No timing is asserted: the loop is turned by hand (``asyncio.sleep(0)``), which does not let any
real time pass for uvicorn's own waits (its 0.1 s tick and the 0.1 s pause of its shutdown).
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from noetl.server.serving import PromptServer

TURNS = 50  # loop turns a stop may take: none of them waits on a clock


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


@pytest.fixture(autouse=True)
def sigterm_recorded() -> Iterator[list[int]]:
    """SIGTERM goes to uvicorn's handler while it serves; this one gets it when uvicorn passes it
    on after its shutdown (as the process's default action would end the server's process)."""
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda sig, _: received.append(sig))
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


async def turns_until_done(task: asyncio.Task[None], limit: int) -> int:
    for turn in range(limit):
        if task.done():
            return turn
        await asyncio.sleep(0)
    return limit


async def started(server: uvicorn.Server, sock: socket.socket) -> asyncio.Task[None]:
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)  # startup: waiting for it is not what is measured
    for _ in range(3):  # into the main loop's wait
        await asyncio.sleep(0)
    return task


def test_a_sigterm_ends_an_idle_server_without_waiting_for_a_tick(sigterm_recorded: list[int]) -> None:
    async def scenario() -> tuple[int, bool]:
        sock = listening()
        server = PromptServer(uvicorn.Config(app, lifespan="off", log_config=None))
        task = await started(server, sock)
        signal.raise_signal(signal.SIGTERM)
        turns = await turns_until_done(task, TURNS)
        await task
        return turns, sock.fileno() == -1

    turns, closed = asyncio.run(scenario())
    assert turns < TURNS  # uvicorn's own Server sleeps 0.1 s twice here: thousands of turns
    assert closed
    assert sigterm_recorded == [signal.SIGTERM]  # passed on once the server had stopped


def test_a_request_in_flight_at_the_stop_still_gets_its_answer(sigterm_recorded: list[int]) -> None:
    async def scenario() -> bytes:
        sock = listening()
        server = PromptServer(uvicorn.Config(app, lifespan="off", log_config=None))
        task = await started(server, sock)
        reader, writer = await asyncio.open_connection(*sock.getsockname())
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        while not server.server_state.connections:
            await asyncio.sleep(0.01)
        signal.raise_signal(signal.SIGTERM)
        answer = await reader.read()  # to the end: the server closes the connection once answered
        writer.close()
        await task
        return answer

    answer = asyncio.run(scenario())
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"\r\n\r\nok")
    assert sigterm_recorded == [signal.SIGTERM]
