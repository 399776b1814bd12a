"""The worker registry: register, heartbeat, deregister, list."""

from __future__ import annotations

from typing import Any

import asyncpg

from noetl.server.problems import NotFound

COLUMNS = "worker_id, name, host, pid, concurrency, status, registered_at, heartbeat_at, running"


async def register(
    conn: asyncpg.Connection, worker_id: str, name: str, host: str, pid: int, concurrency: int
) -> dict[str, Any]:
    """Insert or refresh a worker (idempotent: registering again just marks it online)."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO noetl.workers (worker_id, name, host, pid, concurrency, status)
        VALUES ($1, $2, $3, $4, $5, 'online')
        ON CONFLICT (worker_id) DO UPDATE
        SET name = EXCLUDED.name, host = EXCLUDED.host, pid = EXCLUDED.pid,
            concurrency = EXCLUDED.concurrency, status = 'online', heartbeat_at = now()
        RETURNING {COLUMNS}
        """,
        worker_id,
        name,
        host,
        pid,
        concurrency,
    )
    return dict(row)


async def heartbeat(conn: asyncpg.Connection, worker_id: str, running: list[str]) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""
        UPDATE noetl.workers SET heartbeat_at = now(), running = $2, status = 'online'
        WHERE worker_id = $1
        RETURNING {COLUMNS}
        """,
        worker_id,
        running,
    )
    if row is None:
        raise NotFound(f"no worker {worker_id}; register it again with POST /api/workers")
    return dict(row)


async def deregister(conn: asyncpg.Connection, worker_id: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""
        UPDATE noetl.workers SET status = 'offline', running = '[]'::jsonb
        WHERE worker_id = $1
        RETURNING {COLUMNS}
        """,
        worker_id,
    )
    if row is None:
        raise NotFound(f"no worker {worker_id}")
    return dict(row)


async def list_workers(
    conn: asyncpg.Connection, limit: int, after: str | None = None
) -> list[dict[str, Any]]:
    """Up to ``limit`` workers by id, those after ``after`` (paging by key on the primary key)."""
    rows = await conn.fetch(
        f"""
        SELECT {COLUMNS} FROM noetl.workers WHERE $2::text IS NULL OR worker_id > $2
        ORDER BY worker_id LIMIT $1
        """,
        limit,
        after,
    )
    return [dict(r) for r in rows]


async def delete_silent(conn: asyncpg.Connection, older_than_seconds: float) -> int:
    """Forget workers whose last heartbeat is older than ``older_than_seconds`` (offline ones, and
    ones that died without saying so; a live worker beats every few seconds); how many went."""
    status = await conn.execute(
        "DELETE FROM noetl.workers WHERE heartbeat_at < now() - make_interval(secs => $1)",
        older_than_seconds,
    )
    return int(status.split()[-1])


async def count_online(conn: asyncpg.Connection, stale_seconds: float) -> int:
    """Workers online whose last heartbeat is younger than ``stale_seconds``."""
    return int(
        await conn.fetchval(
            """
            SELECT count(*) FROM noetl.workers
            WHERE status = 'online' AND heartbeat_at > now() - make_interval(secs => $1)
            """,
            stale_seconds,
        )
    )
