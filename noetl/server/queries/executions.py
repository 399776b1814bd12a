"""Executions: create one with its command, read one, list them."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from noetl.protocol.nats import Notice

COMMAND_COLUMNS = """
    command_id, execution_id, status, tool, timeout, attempt, max_attempts, lost_leases, worker_id,
    lease_until, published_at, claimed_at, finished_at, result, error, created_at, updated_at
"""
EVENT_COLUMNS = "event_id, execution_id, command_id, type, payload, worker_id, attempt, seq, created_at"


async def create_execution(
    conn: asyncpg.Connection, tool: dict[str, Any], timeout: float, max_attempts: int
) -> Notice:
    """Insert an execution, its one command and a ``created`` event in one statement (atomic).

    Returns the notice to publish once the statement has committed.
    """
    execution_id, command_id = uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        """
        WITH execution AS (
            INSERT INTO noetl.executions (execution_id, status) VALUES ($1, 'pending')
        ), command AS (
            INSERT INTO noetl.commands (command_id, execution_id, tool, timeout, max_attempts, status)
            VALUES ($2, $1, $3, $4, $5, 'pending')
        )
        INSERT INTO noetl.events (execution_id, command_id, type, payload)
        VALUES ($1, $2, 'created', $6)
        """,
        execution_id,
        command_id,
        tool,
        timeout,
        max_attempts,
        {"tool": tool["kind"], "timeout": timeout, "max_attempts": max_attempts},
    )
    return Notice(command_id=command_id, execution_id=execution_id, attempt=1)


async def get_execution(conn: asyncpg.Connection, execution_id: uuid.UUID) -> dict[str, Any] | None:
    """The execution with its commands and events (oldest first), or None."""
    row = await conn.fetchrow(
        "SELECT execution_id, status, created_at, updated_at FROM noetl.executions WHERE execution_id = $1",
        execution_id,
    )
    if row is None:
        return None
    commands = await conn.fetch(
        f"SELECT {COMMAND_COLUMNS} FROM noetl.commands WHERE execution_id = $1 ORDER BY created_at",
        execution_id,
    )
    events = await conn.fetch(
        f"SELECT {EVENT_COLUMNS} FROM noetl.events WHERE execution_id = $1 ORDER BY event_id",
        execution_id,
    )
    return {**dict(row), "commands": [dict(c) for c in commands], "events": [dict(e) for e in events]}


async def list_executions(
    conn: asyncpg.Connection, status: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of executions, newest first, and the total matching ``status`` (all when None)."""
    rows = await conn.fetch(
        """
        SELECT execution_id, status, created_at, updated_at FROM noetl.executions
        WHERE $1::text IS NULL OR status = $1
        ORDER BY created_at DESC, execution_id
        LIMIT $2 OFFSET $3
        """,
        status,
        limit,
        offset,
    )
    total = await conn.fetchval(
        "SELECT count(*) FROM noetl.executions WHERE $1::text IS NULL OR status = $1", status
    )
    return [dict(r) for r in rows], int(total)
