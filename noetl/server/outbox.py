"""Publishing notices after commit, and again later for whatever NATS missed.

Routes hand the notices of committed changes to ``Outbox.notify``; the ``run`` task publishes
them at once when NATS is up. Commands whose notice was not acknowledged keep
``published_at = NULL``; the same task sweeps for them every interval and whenever NATS comes back,
so a command created while NATS was down is published as soon as it returns.

When a publish fails, the outbox backs off (the interval, doubling up to ``MAX_BACKOFF``): new
notices wait in the database for the next sweep instead of each submission triggering another
round of failing publishes and sweeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from noetl.protocol.nats import Notice
from noetl.server.db import Database, DatabaseUnavailable
from noetl.server.metrics import ServerMetrics
from noetl.server.publisher import Publisher
from noetl.server.queries import commands

log = logging.getLogger(__name__)

SWEEP_BATCH = 500
MAX_BACKOFF = 30.0  # seconds between sweeps at most while publishing keeps failing


class Outbox:
    def __init__(self, db: Database, publisher: Publisher, metrics: ServerMetrics, interval: float) -> None:
        self.db = db
        self.publisher = publisher
        self.metrics = metrics
        self.interval = interval
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
            while True:
                async with self.db.connection() as conn:
                    pending = await commands.unpublished(conn, SWEEP_BATCH)
                if not pending:
                    break
                published = await self._publish(pending)
                if published < len(pending):
                    # NATS failed part-way; a later sweep continues, after the backoff.
                    self._failed()
                    return
                if len(pending) < SWEEP_BATCH:
                    break
            self._backoff = 0.0

    async def _publish(self, notices: list[Notice]) -> int:
        results = await asyncio.gather(*(self.publisher.publish(n) for n in notices))
        acked = [n for n, ok in zip(notices, results, strict=True) if ok]
        if acked:
            self.metrics.published.inc(len(acked))
            async with self.db.connection() as conn:
                await commands.mark_published(conn, acked)
        return len(acked)
