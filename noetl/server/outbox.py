"""Publishing notices after commit, and again later for whatever NATS missed.

Routes hand the notices of committed changes to ``Outbox.notify``; the ``run`` task publishes
them at once when NATS is up, in batches: whatever queued while the previous batch was out goes
together, back to back, its acks awaited together, and one statement marks the acknowledged ones
published. Commands whose notice was not acknowledged keep
``published_at = NULL``; the same task sweeps for them every interval and whenever NATS comes back,
so a command created while NATS was down is published as soon as it returns.

When a publish fails, the outbox backs off (the interval, doubling up to ``MAX_BACKOFF``): new
notices wait in the database for the next sweep instead of each submission triggering another
round of failing publishes and sweeps.

A notice JetStream acknowledged can still be lost later (the stream purged, NATS restarted with
an empty store): a command still ``pending`` ``REPUBLISH_SWEEPS`` intervals after its notice was
acknowledged is published again under a new message id. A notice that was only waiting behind a
busy pool of workers costs one skipped claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from noetl.protocol.nats import Notice
from noetl.server.db import Database, DatabaseUnavailable
from noetl.server.metrics import ServerMetrics
from noetl.server.publisher import Publisher
from noetl.server.queries import commands

log = logging.getLogger(__name__)

SWEEP_BATCH = 500
MAX_BACKOFF = 30.0  # seconds between sweeps at most while publishing keeps failing
# Intervals (NOETL_REAPER_INTERVAL, 2 s by default: one minute) a published command may stay
# pending before its notice counts as lost.
REPUBLISH_SWEEPS = 30


class Outbox:
    def __init__(self, db: Database, publisher: Publisher, metrics: ServerMetrics, interval: float) -> None:
        self.db = db
        self.publisher = publisher
        self.metrics = metrics
        self.interval = interval
        self.republish_after = REPUBLISH_SWEEPS * interval
        self._queue: list[Notice] = []
        self._wake = asyncio.Event()
        self._sweep_due = True
        self._backoff = 0.0  # seconds; 0 while publishing works
        self._retry_at = 0.0  # loop time before which nothing is published

    def notify(self, *notices: Notice) -> None:
        """Publish these soon (call only after their transaction committed)."""
        self._queue.extend(notices)
        self._wake.set()

    def sweep_soon(self) -> None:
        """Look for unpublished commands now (NATS or PostgreSQL just came back)."""
        self._sweep_due = True
        self._backoff = self._retry_at = 0.0
        self._wake.set()

    @property
    def backing_off(self) -> bool:
        return asyncio.get_running_loop().time() < self._retry_at

    def _failed(self) -> None:
        self._backoff = min(max(self.interval, self._backoff * 2), MAX_BACKOFF)
        self._retry_at = asyncio.get_running_loop().time() + self._backoff
        self._sweep_due = True
        log.debug("outbox: publishing failed; next sweep in %.1fs", self._backoff)

    async def run(self) -> None:
        """Background task: publish notified notices, sweep every interval; never returns."""
        loop = asyncio.get_running_loop()
        last_sweep = loop.time()
        while True:
            wait = max(self.interval, self._retry_at - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            # By the clock, not only on idle timeouts: a steady stream of new notices must not
            # postpone the sweep for ones whose publish failed.
            if loop.time() - last_sweep >= self.interval:
                self._sweep_due = True
            if self._sweep_due and not self.backing_off:
                last_sweep = loop.time()
            try:
                await self.flush()
            except DatabaseUnavailable as exc:
                log.debug("outbox: database unavailable (%s)", exc)
            except Exception:
                log.exception("outbox: unexpected error; retrying in %.1fs", self.interval)
                await asyncio.sleep(self.interval)

    async def flush(self) -> None:
        """Publish what is queued, then (when due) what the database still holds unpublished."""
        batch, self._queue = self._queue, []
        if not self.publisher.connected or self.backing_off:
            # Nothing is lost: these commands stay unpublished in the database until the sweep.
            return
        if batch:
            if await self._publish(batch) < len(batch):
                self._failed()
                return
            self._backoff = 0.0
        if self._sweep_due:
            self._sweep_due = False
            if not await self._sweep_unpublished():
                self._failed()  # NATS failed part-way; a later sweep continues, after the backoff
                return
            self._backoff = 0.0
            await self._republish_lost()

    async def _sweep_unpublished(self) -> bool:
        """Publish every command still unpublished; False when NATS failed part-way."""
        while True:
            async with self.db.connection() as conn:
                pending = await commands.unpublished(conn, SWEEP_BATCH)
            if not pending:
                return True
            if await self._publish(pending) < len(pending):
                return False
            if len(pending) < SWEEP_BATCH:
                return True

    async def _republish_lost(self) -> None:
        async with self.db.connection() as conn:
            lost = await commands.lost_notices(conn, self.republish_after, SWEEP_BATCH)
        if not lost:
            return
        log.warning("outbox: %d pending command(s) unclaimed since their notice; publishing again", len(lost))
        await self._publish(lost, commands.mark_republished)

    async def _publish(
        self,
        notices: list[Notice],
        mark: Callable[[asyncpg.Connection, list[Notice]], Awaitable[None]] = commands.mark_published,
    ) -> int:
        results = await self.publisher.publish(notices)
        acked = [n for n, ok in zip(notices, results, strict=True) if ok]
        if acked:
            self.metrics.published.inc(len(acked))
            async with self.db.connection() as conn:
                await mark(conn, acked)
        return len(acked)
