"""The few reads only the UI makes, as small functions taking a connection (the rest are the
API's own queries in ``noetl.server.queries``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from noetl.server.queries.executions import SUMMARY_COLUMNS

# Rows of a step's commands shown in its detail (a loop of thousands shows its latest ones).
STEP_COMMANDS = 50


async def versions(conn: asyncpg.Connection, path: str) -> list[dict[str, Any]]:
    """Every version of a playbook, newest first (the unique (path, version) index)."""
    rows = await conn.fetch(
        "SELECT version, catalog_id, created_at FROM noetl.catalog WHERE path = $1 ORDER BY version DESC",
        path,
    )
    return [dict(r) for r in rows]


async def list_executions(
    conn: asyncpg.Connection,
    status: str | None,
    path: str | None,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[dict[str, Any]]:
    """A page of executions, newest first, with ``status`` and of the playbook ``path`` when given,
    from after the row keyed ``after`` (the API's key: created_at, execution_id)."""
    since, after_id = after if after is not None else (None, None)
    rows = await conn.fetch(
        f"""
        SELECT {SUMMARY_COLUMNS} FROM noetl.executions
        WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR path = $2)
          AND ($4::timestamptz IS NULL
               OR created_at <= $4 AND (created_at < $4 OR execution_id > $5::uuid))
        ORDER BY created_at DESC, execution_id
        LIMIT $3
        """,
        status,
        path,
        limit,
        since,
        after_id,
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
    """The execution and step of each command id (the workers page links what each one runs)."""
    ids = []
    for value in command_ids:
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue
    rows = await conn.fetch(
        """
        SELECT command_id, execution_id, step, iteration FROM noetl.commands
        WHERE command_id = ANY($1::uuid[])
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


async def overview(conn: asyncpg.Connection) -> dict[str, Any]:
    """Executions by status over the last hour and day, the latest failures, the workers."""
    counts = await conn.fetch(
        """
        SELECT status, count(*) FILTER (WHERE created_at > now() - interval '1 hour') AS hour,
               count(*) AS day
        FROM noetl.executions WHERE created_at > now() - interval '1 day' GROUP BY status
        """
    )
    failures = await conn.fetch(
        f"""
        SELECT e.*, s.step AS failed_step, s.error AS step_error
        FROM (
            SELECT {SUMMARY_COLUMNS}, error FROM noetl.executions
            WHERE status = 'FAILED' ORDER BY created_at DESC LIMIT 10
        ) e
        LEFT JOIN LATERAL (
            SELECT step, error FROM noetl.step_runs
            WHERE execution_id = e.execution_id AND status = 'failed' ORDER BY finished_at LIMIT 1
        ) s ON true
        ORDER BY e.created_at DESC
        """
    )
    return {
        "by_status": {r["status"]: {"hour": r["hour"], "day": r["day"]} for r in counts},
        "failures": [dict(r) for r in failures],
    }
