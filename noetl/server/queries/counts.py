"""Counts for /metrics, each bounded by an index: no scrape walks the whole commands table."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def commands_by_status(conn: asyncpg.Connection, statuses: Sequence[str]) -> dict[str, int]:
    """Commands per status, for these statuses only (an index range per status)."""
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM noetl.commands WHERE status = ANY($1::text[]) GROUP BY status",
        list(statuses),
    )
    return {r["status"]: int(r["n"]) for r in rows}


async def outbox_backlog(conn: asyncpg.Connection) -> int:
    """Pending commands whose notice JetStream has not acknowledged (a partial index holds them)."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM noetl.commands WHERE status = 'pending' AND published_at IS NULL"
        )
    )
