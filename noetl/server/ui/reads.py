"""The few reads only the UI makes, as small functions taking a connection (the rest are the
API's own queries in ``noetl.server.queries``)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

# Rows of a step's commands shown in its detail (a loop of thousands shows its latest ones).
STEP_COMMANDS = 50


async def versions(conn: asyncpg.Connection, path: str) -> list[dict[str, Any]]:
    """Every version of a playbook, newest first (the unique (path, version) index)."""
    rows = await conn.fetch(
        "SELECT version, catalog_id, created_at FROM noetl.catalog WHERE path = $1 ORDER BY version DESC",
        path,
    )
    return [dict(r) for r in rows]


async def step_commands(conn: asyncpg.Connection, execution_id: uuid.UUID, step: str) -> list[dict[str, Any]]:
    """A step's commands (one per iteration of a loop), latest first: what ran, where, how often."""
    rows = await conn.fetch(
        """
        SELECT command_id, iteration, status, tool, attempt, max_attempts, worker_id, claimed_at,
               finished_at, created_at, result, error
        FROM noetl.commands WHERE execution_id = $1 AND step = $2
        ORDER BY created_at DESC, iteration DESC NULLS LAST LIMIT $3
        """,
        execution_id,
        step,
        STEP_COMMANDS,
    )
    return [dict(r) for r in rows]


async def commands_of(conn: asyncpg.Connection, command_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The execution, its playbook and the step of each command id (the workers page links what
    each one runs)."""
    ids = []
    for value in command_ids:
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue
    rows = await conn.fetch(
        """
        SELECT c.command_id, c.execution_id, c.step, c.iteration, e.path FROM noetl.commands c
        JOIN noetl.executions e USING (execution_id)
        WHERE c.command_id = ANY($1::uuid[])
        """,
        ids,
    )
    return {str(r["command_id"]): dict(r) for r in rows}


async def execution_brief(conn: asyncpg.Connection, execution_id: uuid.UUID) -> dict[str, Any] | None:
    """Status and times of one execution (what the live stream sends with each change)."""
    row = await conn.fetchrow(
        "SELECT status, updated_at, finished_at, error FROM noetl.executions WHERE execution_id = $1",
        execution_id,
    )
    return dict(row) if row is not None else None
