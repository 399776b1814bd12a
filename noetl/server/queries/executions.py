"""Executions: read one, its steps and events, list them (``submissions`` creates them for `noetl submit`)."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime
from typing import Any

import asyncpg

from noetl.protocol.words import EVENT_TYPES, EXECUTION_FINISHED
from noetl.server import paging
from noetl.server.queries import catalog

COMMAND_COLUMNS = """
    command_id, execution_id, status, tool, timeout, attempt, max_attempts, lost_leases, worker_id,
    lease_until, published_at, claimed_at, finished_at, result, error, created_at, updated_at
"""
EVENT_COLUMNS = "event_id, execution_id, command_id, type, payload, worker_id, attempt, seq, created_at"


SUMMARY_COLUMNS = """
    execution_id, status, path, version, catalog_id::text AS catalog_id, parent_execution_id, created_at,
    updated_at, finished_at
"""


async def get_execution(conn: asyncpg.Connection, execution_id: uuid.UUID) -> dict[str, Any] | None:
    """The execution, or None. A playbook's comes with its step summary (small however long the
    run: the events are paged by ``events_page``); a `noetl submit` one with its command and events.
    """
    row = await conn.fetchrow(
        f"SELECT {SUMMARY_COLUMNS}, workload, result, error FROM noetl.executions WHERE execution_id = $1",
        execution_id,
    )
    if row is None:
        return None
    found = dict(row)
    if row["catalog_id"] is not None:
        return {**found, "steps": await step_summary(conn, execution_id)}
    commands = await conn.fetch(
        f"SELECT {COMMAND_COLUMNS} FROM noetl.commands WHERE execution_id = $1 ORDER BY created_at",
        execution_id,
    )
    events = await conn.fetch(
        f"SELECT {EVENT_COLUMNS} FROM noetl.events WHERE execution_id = $1 ORDER BY event_id",
        execution_id,
    )
    return {**found, "commands": [dict(c) for c in commands], "events": [dict(e) for e in events]}


async def step_summary(conn: asyncpg.Connection, execution_id: uuid.UUID) -> list[dict[str, Any]]:
    """Each step that entered, in the order they entered: status, attempts (the worker attempts
    of its command, retries after lost leases included), times, result or error, and a loop
    step's ``iterations`` counters (done/total; never its items)."""
    rows = await conn.fetch(
        """
        SELECT s.step AS name, s.status, greatest(s.attempts, coalesce(c.attempts, 0)) AS attempts,
               s.started_at, s.finished_at, s.result, s.error,
               CASE WHEN l.step IS NOT NULL THEN jsonb_build_object(
                   'total', l.total, 'done', l.done, 'failed', l.failed,
                   'running', l.dispatched - l.done - l.failed) END AS iterations
        FROM noetl.step_runs s
        LEFT JOIN noetl.loops l USING (execution_id, step)
        -- A loop step's attempts: the most any of its iterations needed (one index probe, never
        -- a scan of the iterations: the loop step's commands are found by the step index).
        LEFT JOIN LATERAL (
            SELECT max(attempt) AS attempts FROM noetl.commands
            WHERE execution_id = s.execution_id AND step = s.step
        ) c ON true
        WHERE s.execution_id = $1
        ORDER BY s.started_at NULLS LAST, s.step
        """,
        execution_id,
    )
    return [dict(r) for r in rows]


async def events_page(
    conn: asyncpg.Connection, execution_id: uuid.UUID, after: int, limit: int
) -> list[dict[str, Any]]:
    """The engine's events (NoETL's shapes) after event id ``after``, oldest first."""
    rows = await conn.fetch(
        """
        SELECT event_id, type AS event_type, node_name, status, created_at,
               payload -> 'result' AS result, payload ->> 'error' AS error,
               (payload ->> 'iteration')::int AS iteration, (payload ->> 'attempt')::int AS attempt
        FROM noetl.events
        WHERE execution_id = $1 AND event_id > $2 AND type = ANY($3::text[])
        ORDER BY event_id LIMIT $4
        """,
        execution_id,
        after,
        list(EVENT_TYPES),
        limit,
    )
    return [dict(r) for r in rows]


async def exists(conn: asyncpg.Connection, execution_id: uuid.UUID) -> bool:
    found = await conn.fetchval("SELECT 1 FROM noetl.executions WHERE execution_id = $1", execution_id)
    return found is not None


async def list_executions(
    conn: asyncpg.Connection,
    status: str | None,
    limit: int,
    offset: int = 0,
    after: tuple[datetime, uuid.UUID] | None = None,
    parent_execution_id: uuid.UUID | None = None,
    path: str | None = None,
) -> tuple[list[dict[str, Any]], int, bool]:
    """A page of executions, newest first, from after the row keyed ``after`` (created_at,
    execution_id) and then ``offset`` more; with how many match the filters (``status``, the
    playbook ``path``, the children of ``parent_execution_id``; each ignored when None), counted
    up to ``paging.TOTAL_CAP``, and whether there are more than that.
    """
    # Only the given filters are written into the statement: one statement per combination,
    # each ranging over the index that starts with its columns (migration 5).
    filters = {"path": path, "status": status, "parent_execution_id": parent_execution_id}
    given = [(column, value) for column, value in filters.items() if value is not None]
    where = " AND ".join(f"{column} = ${i}" for i, (column, _) in enumerate(given, start=1)) or "true"
    args: list[Any] = [value for _, value in given]
    n = len(args)
    key = ""
    if after is not None:
        # Written so the (…, created_at DESC, execution_id) indexes range over it.
        key = f"AND created_at <= ${n + 3} AND (created_at < ${n + 3} OR execution_id > ${n + 4})"
        args_page = [*args, limit, offset, *after]
    else:
        args_page = [*args, limit, offset]
    async with conn.transaction(readonly=True):
        # Planned for the values given, every time. After a few calls PostgreSQL may keep one
        # generic plan for a prepared statement, made without the values: it walks all executions
        # newest first until enough match, which is 100,000 rows for a path no execution has or a
        # status none is in. With the values the planner knows how rare they are.
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        rows = await conn.fetch(
            f"""
            SELECT {SUMMARY_COLUMNS} FROM noetl.executions
            WHERE {where} {key}
            ORDER BY created_at DESC, execution_id
            LIMIT ${n + 1} OFFSET ${n + 2}
            """,
            *args_page,
        )
        # Bounded: the count stops at the cap instead of walking the whole table on every call.
        counted = await conn.fetchval(
            f"SELECT count(*) FROM (SELECT 1 FROM noetl.executions WHERE {where} LIMIT ${n + 1}) AS capped",
            *args,
            paging.TOTAL_CAP + 1,
        )
    return [dict(r) for r in rows], min(int(counted), paging.TOTAL_CAP), int(counted) > paging.TOTAL_CAP


async def progress(conn: asyncpg.Connection, execution_id: uuid.UUID) -> dict[str, Any] | None:
    """NoETL's ``/status``: the current step, counts of steps by state, and each loop step's
    iterations by state; None when unknown. A `noetl submit` execution counts as one step."""
    row = await conn.fetchrow(
        "SELECT status, catalog_id FROM noetl.executions WHERE execution_id = $1", execution_id
    )
    if row is None:
        return None
    if row["catalog_id"] is None:
        ended = row["status"] != "RUNNING"
        counts = {
            "total_steps": 1,
            "completed_steps": int(row["status"] == "COMPLETED"),
            "running_steps": int(not ended),
            "failed_steps": int(row["status"] == "FAILED"),
        }
        current = None
        loops = []
    else:
        pb = await catalog.playbook(conn, row["catalog_id"])
        steps = await conn.fetch(
            """
            SELECT step, status, started_at FROM noetl.step_runs WHERE execution_id = $1
            ORDER BY started_at DESC NULLS LAST
            """,
            execution_id,
        )
        by_status = Counter(s["status"] for s in steps)
        counts = {
            "total_steps": len(pb.steps),
            "completed_steps": by_status["done"],
            "running_steps": by_status["running"],
            "failed_steps": by_status["failed"],
        }
        running = [s["step"] for s in steps if s["status"] == "running"]
        current = running[0] if running else (steps[0]["step"] if steps else None)
        loops = await conn.fetch(
            """
            SELECT step, total, done, failed, dispatched - done - failed AS running FROM noetl.loops
            WHERE execution_id = $1 ORDER BY step
            """,
            execution_id,
        )
    return {
        "execution_id": execution_id,
        "status": row["status"],
        "current_step": current,
        "progress": counts,
        "loops": [dict(loop) for loop in loops],
        "is_cancelled": row["status"] == "CANCELLED",
    }


async def delete_finished(conn: asyncpg.Connection, older_than_seconds: float, limit: int) -> dict[str, int]:
    """Delete up to ``limit`` executions that finished more than ``older_than_seconds`` ago, with
    their commands, step runs and events (the foreign keys cascade), in one statement; the counts
    of each that went. A child is kept while its parent still runs (the parent waits for it)."""
    row = await conn.fetchrow(
        """
        WITH doomed AS (
            SELECT e.execution_id FROM noetl.executions e
            WHERE e.status = ANY($1::text[])
              -- created_at bounds the index range; the finish time decides
              AND e.created_at < now() - make_interval(secs => $2)
              AND coalesce(e.finished_at, e.updated_at) < now() - make_interval(secs => $2)
              AND NOT EXISTS (
                  SELECT 1 FROM noetl.executions p
                  WHERE p.execution_id = e.parent_execution_id AND p.status = 'RUNNING'
              )
            ORDER BY e.created_at
            LIMIT $3
            FOR UPDATE SKIP LOCKED
        ), gone AS (
            DELETE FROM noetl.executions x USING doomed d
            WHERE x.execution_id = d.execution_id
            RETURNING x.execution_id
        )
        SELECT (SELECT count(*) FROM gone) AS executions,
               (SELECT count(*) FROM noetl.commands WHERE execution_id IN (SELECT execution_id FROM doomed))
                   AS commands,
               (SELECT count(*) FROM noetl.step_runs WHERE execution_id IN (SELECT execution_id FROM doomed))
                   AS steps,
               (SELECT count(*) FROM noetl.events WHERE execution_id IN (SELECT execution_id FROM doomed))
                   AS events
        """,
        list(EXECUTION_FINISHED),
        older_than_seconds,
        limit,
    )
    assert row is not None
    return {key: int(row[key]) for key in ("executions", "commands", "steps", "events")}
