"""Group commit of a worker's calls (``noetl.worker.batch.Coalescer``): what goes in which request.

``send`` here is a function that records each request's items and answers when the test says;
a request "in flight" is one whose answer the test has not released yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from noetl.worker.api import ApiRejected, ServerUnreachable
from noetl.worker.batch import Coalescer


class Server:
    """Answers each item with its double; holds every answer until ``release`` when ``held``."""

    def __init__(self, held: bool = False) -> None:
        self.requests: list[list[int]] = []
        self.untils: list[float | None] = []
        self.gate = asyncio.Event()
        if not held:
            self.gate.set()
        self.fail: Exception | None = None  # the next request's error (once)

    async def send(self, items: list[int], until: float | None) -> Sequence[int | Exception]:
        self.requests.append(list(items))
        self.untils.append(until)
        await self.gate.wait()
        fail, self.fail = self.fail, None
        if fail is not None:
            raise fail
        return [ApiRejected(422, f"item {i} is invalid") if i < 0 else 2 * i for i in items]


async def turns(count: int = 3) -> None:
    """Let the event loop run ``count`` times (no clock involved)."""
    for _ in range(count):
        await asyncio.sleep(0)


def test_a_lone_call_goes_out_at_once() -> None:
    async def scenario() -> None:
        server = Server(held=True)
        batches = Coalescer(server.send, limit=100)
        call = asyncio.ensure_future(batches.call(21, until=None))
        await turns()  # no timer: the request is out within a few turns of the loop
        assert server.requests == [[21]]
        server.gate.set()
        assert await call == 42

    asyncio.run(scenario())


def test_calls_made_in_the_same_turn_go_in_one_request() -> None:
    async def scenario() -> None:
        server = Server()
        batches = Coalescer(server.send, limit=100)
        assert await asyncio.gather(*(batches.call(i, until=None) for i in range(5))) == [0, 2, 4, 6, 8]
        assert server.requests == [[0, 1, 2, 3, 4]]

    asyncio.run(scenario())


def test_calls_made_while_a_request_is_in_flight_go_together_in_the_next() -> None:
    async def scenario() -> None:
        server = Server(held=True)
        batches = Coalescer(server.send, limit=100)
        first = asyncio.ensure_future(batches.call(1, until=None))
        await turns()
        later = [asyncio.ensure_future(batches.call(i, until=None)) for i in (2, 3, 4)]
        await turns()
        assert server.requests == [[1]]  # one request in flight at a time; the others wait
        server.gate.set()
        assert await asyncio.gather(first, *later) == [2, 4, 6, 8]
        assert server.requests == [[1], [2, 3, 4]]

    asyncio.run(scenario())


def test_a_request_carries_at_most_limit_items() -> None:
    async def scenario() -> None:
        server = Server()
        batches = Coalescer(server.send, limit=2)
        assert await asyncio.gather(*(batches.call(i, until=None) for i in range(5))) == [0, 2, 4, 6, 8]
        assert server.requests == [[0, 1], [2, 3], [4]]

    asyncio.run(scenario())


def test_each_call_gets_its_own_answer() -> None:
    async def scenario() -> None:
        server = Server()
        batches = Coalescer(server.send, limit=100)
        good, bad = await asyncio.gather(
            batches.call(3, until=None), batches.call(-1, until=None), return_exceptions=True
        )
        assert good == 6
        assert isinstance(bad, ApiRejected) and bad.detail == "item -1 is invalid"
        assert server.requests == [[3, -1]]

    asyncio.run(scenario())


def test_a_failed_request_fails_its_calls_and_the_next_request_goes_on() -> None:
    async def scenario() -> None:
        server = Server(held=True)
        server.fail = ServerUnreachable("no server")
        batches = Coalescer(server.send, limit=100)
        first = [asyncio.ensure_future(batches.call(i, until=None)) for i in (1, 2)]
        await turns()
        later = asyncio.ensure_future(batches.call(3, until=None))
        await turns()
        server.gate.set()
        outcomes = await asyncio.gather(*first, return_exceptions=True)
        assert all(isinstance(o, ServerUnreachable) for o in outcomes)
        assert await later == 6
        assert server.requests == [[1, 2], [3]]

    asyncio.run(scenario())


def test_the_request_is_retried_until_the_latest_deadline_of_its_calls() -> None:
    async def scenario() -> None:
        server = Server()
        batches = Coalescer(server.send, limit=100)
        await asyncio.gather(batches.call(1, until=5.0), batches.call(2, until=7.0))
        await asyncio.gather(batches.call(1, until=5.0), batches.call(2, until=None))
        assert server.untils == [7.0, None]

    asyncio.run(scenario())


def test_a_call_cancelled_before_its_request_is_left_out() -> None:
    async def scenario() -> None:
        server = Server(held=True)
        batches = Coalescer(server.send, limit=100)
        first = asyncio.ensure_future(batches.call(1, until=None))
        await turns()
        gone = asyncio.ensure_future(batches.call(2, until=None))
        kept = asyncio.ensure_future(batches.call(3, until=None))
        await turns()
        gone.cancel()
        server.gate.set()
        assert await asyncio.gather(first, kept) == [2, 6]
        assert server.requests == [[1], [3]]
        with pytest.raises(asyncio.CancelledError):
            await gone

    asyncio.run(scenario())
