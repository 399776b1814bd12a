"""The overview's figures: executions by status, the latest failures, the workers' load.

Each is one statement bounded by an index (see migration 5), so the overview of a database of
100,000 executions costs what one of 100 costs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from noetl.protocol.words import EXECUTION_STATUSES


async def status_counts(conn: asyncpg.Connection, since: datetime) -> dict[str, int]:
    """How many executions started at or after ``since``, by status; every status is a key."""
    # One range of the (status, created_at) index per status, read from the index alone: no
    # visit of the rows themselves, however many executions started in the window.
    rows = await conn.fetch(
        """
        SELECT s.status, (
            SELECT count(*) FROM noetl.executions e WHERE e.status = s.status AND e.created_at >= $1
        ) AS n
        FROM unnest($2::text[]) AS s(status)
        """,
        since,
        list(EXECUTION_STATUSES),
    )
    return {r["status"]: int(r["n"]) for r in rows}


async def recent_failures(conn: asyncpg.Connection, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` executions that failed last, newest first: execution_id, path (None for a
    `noetl submit` one), the failed ``step`` (the last one that failed; None when no step did)
    and its ``error`` (the execution's own when no step failed), ``finished_at``."""
    rows = await conn.fetch(
        """
        SELECT e.execution_id, e.path, f.step, coalesce(f.error, e.error) AS error, e.finished_at
        FROM noetl.executions e
        LEFT JOIN LATERAL (
            SELECT s.step, s.error FROM noetl.step_runs s
            WHERE s.execution_id = e.execution_id AND s.status = 'failed'
            ORDER BY s.finished_at DESC NULLS LAST, s.step
            LIMIT 1
        ) f ON true
        WHERE e.status = 'FAILED'
        ORDER BY e.finished_at DESC NULLS LAST, e.execution_id
        LIMIT $1
        """,
        limit,
    )
    return [dict(r) for r in rows]


async def workers_load(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Workers online, by id: worker_id, name, host, pid, concurrency, heartbeat_at, and
    ``running``: how many commands each holds a lease on now (the server's record, not the
    worker's last heartbeat)."""
    rows = await conn.fetch(
        """
        SELECT w.worker_id, w.name, w.host, w.pid, w.concurrency, w.heartbeat_at,
               coalesce(c.running, 0) AS running
        FROM noetl.workers w
        LEFT JOIN (
            SELECT worker_id, count(*) AS running FROM noetl.commands
            WHERE status = 'claimed'
            GROUP BY worker_id
        ) c USING (worker_id)
        WHERE w.status = 'online'
        ORDER BY w.worker_id
        """
    )
    return [{**dict(r), "running": int(r["running"])} for r in rows]
