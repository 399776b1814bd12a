"""The one lock order: an execution's ancestors first (the root down), then the execution, then
its commands.

A sub-playbook's end finishes its parent's step in the same transaction, and cancelling a parent
cancels its children: both paths lock parent before child, so they wait for each other instead
of deadlocking. ``parent_execution_id`` never changes once set, so the chain is read unlocked.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from noetl.server.problems import NotFound

EXECUTION_COLUMNS = """
    execution_id, status, catalog_id, workload, ctx, path, parent_execution_id, parent_step, parent_iteration
"""


_ANCESTORS = """
    WITH RECURSIVE up AS (
        SELECT parent_execution_id AS id, 1 AS depth FROM noetl.executions WHERE execution_id = $1
        UNION ALL
        SELECT e.parent_execution_id, up.depth + 1
        FROM noetl.executions e JOIN up ON e.execution_id = up.id
    )
    SELECT id FROM up WHERE id IS NOT NULL ORDER BY depth DESC
"""


async def depth(conn: asyncpg.Connection, execution_id: UUID) -> int:
    """How many ancestors the execution has (0 for one started by a client)."""
    return len(await conn.fetch(_ANCESTORS, execution_id))


async def lock_execution(conn: asyncpg.Connection, execution_id: UUID) -> asyncpg.Record:
    """Take the row locks of the execution's ancestors (root first), then its own; its row, or
    NotFound. Call inside an open transaction."""
    # The common case first, in one round trip (every step's end takes this lock): an execution
    # without ancestors has nothing to lock before its own row.
    row = await conn.fetchrow(
        f"""
        SELECT {EXECUTION_COLUMNS} FROM noetl.executions
        WHERE execution_id = $1 AND parent_execution_id IS NULL FOR UPDATE
        """,
        execution_id,
    )
    if row is not None:
        return row
    ancestors = await conn.fetch(_ANCESTORS, execution_id)
    for ancestor in ancestors:
        await conn.execute(
            "SELECT 1 FROM noetl.executions WHERE execution_id = $1 FOR UPDATE", ancestor["id"]
        )
    row = await conn.fetchrow(
        f"SELECT {EXECUTION_COLUMNS} FROM noetl.executions WHERE execution_id = $1 FOR UPDATE", execution_id
    )
    if row is None:
        raise NotFound(f"no execution {execution_id}")
    return row


async def lock_execution_of(conn: asyncpg.Connection, command_id: UUID) -> None:
    """``lock_execution`` for the execution of ``command_id`` (nothing when there is no such command)."""
    # The common case first, in one round trip: an execution without ancestors (every `noetl
    # submit`, every top-level playbook) has nothing to lock before its own row.
    if await conn.fetchval(
        """
        SELECT execution_id FROM noetl.executions
        WHERE execution_id = (SELECT execution_id FROM noetl.commands WHERE command_id = $1)
          AND parent_execution_id IS NULL
        FOR UPDATE
        """,
        command_id,
    ):
        return
    execution_id = await conn.fetchval(
        "SELECT execution_id FROM noetl.commands WHERE command_id = $1", command_id
    )
    if execution_id is not None:
        await lock_execution(conn, execution_id)
