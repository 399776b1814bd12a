"""Group commit for a worker's calls: what its jobs ask while a request is in flight goes in the next.

The first call goes out at once (on the event loop's next turn, so the calls made in the same
turn, as when one fetch starts several jobs, already go together); calls that arrive while a
request is in flight wait for it and then go together in one request. Nothing waits on a timer:
an idle worker's lone call costs no added latency, and a busy one sends one request per round
trip, however many of its jobs ask meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# Sends items in one request: each item's result or the exception that is its answer, in order.
# ``until`` is the latest deadline of the items (``None``: one of them has none).
Send = Callable[[list[Item], float | None], Awaitable[Sequence[Result | Exception]]]


@dataclass
class _Call(Generic[Item, Result]):
    item: Item
    until: float | None
    future: asyncio.Future[Result]


class Coalescer(Generic[Item, Result]):
    """Calls of one kind, sent ``limit`` at most to a request, one request in flight at a time."""

    def __init__(self, send: Send[Item, Result], *, limit: int) -> None:
        self._send = send
        self._limit = limit
        self._waiting: list[_Call[Item, Result]] = []
        self._sender: asyncio.Task[None] | None = None

    async def call(self, item: Item, until: float | None) -> Result:
        """The item's result, or its answer's exception; the whole request's error (the server
        unreachable until the deadline, a token refused) is every item's."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Call(item, until, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send_waiting())
        # A caller cancelled before its item went out is left out; one cancelled in flight only
        # stops waiting for the answer (as a cancelled single request would).
        return await future

    async def _send_waiting(self) -> None:
        while self._waiting:
            batch = [c for c in self._waiting[: self._limit] if not c.future.done()]
            del self._waiting[: self._limit]
            if batch:
                await self._send_batch(batch)

    async def _send_batch(self, batch: list[_Call[Item, Result]]) -> None:
        untils = [c.until for c in batch]
        until = None if None in untils else max(u for u in untils if u is not None)
        try:
            outcomes = await self._send([c.item for c in batch], until)
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} answers to a batch of {len(batch)} calls")
        except asyncio.CancelledError:
            for c in (*batch, *self._waiting):
                c.future.cancel()
            self._waiting.clear()
            raise
        except Exception as exc:
            outcomes = [exc] * len(batch)
        for c, outcome in zip(batch, outcomes, strict=True):
            if c.future.done():
                continue
            if isinstance(outcome, Exception):
                c.future.set_exception(outcome)
            else:
                c.future.set_result(outcome)
