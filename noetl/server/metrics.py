"""Prometheus metrics of one server process, in a registry of its own (one per app).

Latencies are observed as commands change state in this process; the counts (commands by status,
queue depth, outbox backlog, workers online) are read from PostgreSQL at scrape time, so every
replica reports the same totals. The live statuses (few rows, indexed) are counted on every scrape;
the finished ones (the bulk of the table until retention removes them) at most every
``FINISHED_REFRESH`` seconds, however often the endpoint is scraped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from noetl.protocol.words import FINISHED, STATUSES
from noetl.server.db import Database, DatabaseBusy, DatabaseUnavailable
from noetl.server.queries import counts, workers

log = logging.getLogger(__name__)

WORKER_STALE_SECONDS = 60.0  # a worker silent for longer is not counted online
FINISHED_REFRESH = 60.0  # seconds the counts of finished commands are reused between scrapes
LIVE = tuple(s for s in STATUSES if s not in FINISHED)
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class ServerMetrics:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._finished: dict[str, int] = {}
        self._finished_at: float | None = None
        self._scrape = asyncio.Lock()  # concurrent scrapes share one round of queries
        self.registry = CollectorRegistry()
        r = self.registry
        self.commands = Gauge("noetl_commands", "Commands by status.", ["status"], registry=r)
        self.queue_depth = Gauge("noetl_queue_depth", "Commands pending (waiting for a claim).", registry=r)
        self.outbox_backlog = Gauge(
            "noetl_outbox_backlog", "Pending commands whose notice is not yet in JetStream.", registry=r
        )
        self.workers_online = Gauge(
            "noetl_workers_online", "Workers online with a recent heartbeat.", registry=r
        )
        self.claim_latency = Histogram(
            "noetl_claim_latency_seconds",
            "Time a command waited pending before a worker claimed it.",
            buckets=_BUCKETS,
            registry=r,
        )
        self.completion_latency = Histogram(
            "noetl_completion_latency_seconds",
            "Time from claim to completion or failure.",
            ["status"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.submit_batch = Histogram(
            "noetl_submit_batch_size",
            "Submissions inserted together in one statement (the count is the statements).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.published = Counter("noetl_notices_published", "Notices acknowledged by JetStream.", registry=r)
        self.handed = Counter(
            "noetl_commands_handed",
            "Commands claimed for the worker that reported the end of the one before, in that "
            "report's answer (chained dispatch: no notice published, no claim request).",
            registry=r,
        )
        self.reaped = Counter(
            "noetl_leases_expired",
            "Expired leases returned to pending or made dead.",
            ["outcome"],
            registry=r,
        )
        self.db_up = Gauge("noetl_database_up", "1 when PostgreSQL answered the last scrape.", registry=r)

    def claimed(self, claim: Mapping[str, Any]) -> None:
        """Observe a claim's wait: from its command becoming available to the claim."""
        waited = (claim["claimed_at"] - claim["available_at"]).total_seconds()
        self.claim_latency.observe(max(waited, 0.0))

    async def render(self, db: Database) -> bytes:
        """Refresh the counts from PostgreSQL (when it answers) and return the text format."""
        async with self._scrape:
            try:
                await self._refresh(db)
            except DatabaseBusy as exc:
                log.debug("metrics: counts not refreshed (%s)", exc)  # up, busy: the last counts stand
            except DatabaseUnavailable as exc:
                log.debug("metrics: database unavailable (%s)", exc)
                self.db_up.set(0)
            else:
                self.db_up.set(1)
        return generate_latest(self.registry)

    async def _refresh(self, db: Database) -> None:
        now = self.clock()
        stale = self._finished_at is None or now - self._finished_at >= FINISHED_REFRESH
        async with db.connection("read") as conn:
            by_status = await counts.commands_by_status(conn, LIVE)
            backlog = await counts.outbox_backlog(conn)
            online = await workers.count_online(conn, WORKER_STALE_SECONDS)
            if stale:
                self._finished = await counts.commands_by_status(conn, FINISHED)
                self._finished_at = now
        by_status.update(self._finished)
        for status in STATUSES:
            self.commands.labels(status).set(by_status.get(status, 0))
        self.queue_depth.set(by_status.get("pending", 0))
        self.outbox_backlog.set(backlog)
        self.workers_online.set(online)
