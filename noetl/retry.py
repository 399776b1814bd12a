"""Retrying with capped exponential backoff: the one loop every reconnecting part of noetl uses.

The server opening its database pool and its NATS stream, the worker setting up its consumer and
calling the API all wait the same way: try, and on an error that may pass, sleep a little longer
each time, up to a cap, until it works or a deadline comes. The clock and the sleep are parameters,
so tests check the delays without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


@dataclass(frozen=True)
class Backoff:
    """The delays between attempts: ``first``, then ``factor`` times longer each time, at most ``cap``."""

    first: float
    cap: float
    factor: float = 2.0

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(delay * self.factor, self.cap)


# Waiting for a service to come back (the database, a NATS stream or consumer): for as long as it
# takes, trying again at least every 5 seconds.
RECONNECT = Backoff(first=0.2, cap=5.0)


def _ignore(_: BaseException) -> None:
    return None


async def retry(
    attempt: Callable[[], Awaitable[T]],
    *,
    errors: tuple[type[E], ...],
    backoff: Backoff,
    on_error: Callable[[E], None] = _ignore,
    until: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Await ``attempt()`` until it returns, and return what it returned.

    When it raises one of ``errors``, ``on_error`` is told (to log it) and the next attempt starts
    after the next backoff delay. With ``until`` (a ``clock()`` time) the error is raised instead
    once the next attempt could not start by then; without it, only cancelling the caller stops
    the loop. Any other exception ends the loop at once.
    """
    delays = backoff.delays()
    while True:
        try:
            return await attempt()
        except errors as exc:
            delay = next(delays)
            if until is not None and clock() + delay > until:
                raise
            on_error(exc)
        await sleep(delay)
