"""A loop step's rows: its counters (``noetl.loops``) and its items and results (``noetl.iterations``).

The item list is stored once when the loop starts; afterwards every query here touches one row
per call (a primary-key lookup or update), so an iteration's end costs the same whatever the
loop's size. Only ``results`` reads every iteration, once, at ``loop.done``.
Callers hold the execution's row lock inside an open transaction (see ``transitions``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

import asyncpg

from noetl.engine.state import IterationEnd, LoopRun, LoopStart


def counters_of(row: Mapping[str, Any]) -> LoopRun | None:
    """A loop step's counters from a row with the columns of ``noetl.loops`` (None: not a loop)."""
    if row["total"] is None:
        return None
    return LoopRun(
        total=row["total"],
        max_in_flight=row["max_in_flight"],
        dispatched=row["dispatched"],
        done=row["done"],
        failed=row["failed"],
    )


async def next_item(conn: asyncpg.Connection, execution_id: UUID, step: str, loop: LoopRun) -> None:
    """Put the item at ``loop.dispatched`` (the next one to dispatch, if any) into ``next_items``."""
    if loop.dispatched >= loop.total:
        return
    row = await conn.fetchrow(
        "SELECT item FROM noetl.iterations WHERE execution_id = $1 AND step = $2 AND iteration = $3",
        execution_id,
        step,
        loop.dispatched,
    )
    if row is not None:
        loop.next_items[loop.dispatched] = row["item"]


async def store_starts(conn: asyncpg.Connection, execution_id: UUID, starts: Iterable[LoopStart]) -> None:
    """Store each started loop's items once (a loop entered again starts afresh)."""
    for start in starts:
        await conn.execute(
            "DELETE FROM noetl.loops WHERE execution_id = $1 AND step = $2", execution_id, start.step
        )
        await conn.execute(
            "INSERT INTO noetl.loops (execution_id, step, total) VALUES ($1, $2, $3)",
            execution_id,
            start.step,
            len(start.items),
        )
        # One statement for the whole list: the items travel as one JSON array, not N round trips.
        await conn.execute(
            """
            INSERT INTO noetl.iterations (execution_id, step, iteration, item, status)
            SELECT $1, $2, (i.ord - 1)::int, i.item, 'pending'
            FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS i(item, ord)
            """,
            execution_id,
            start.step,
            list(start.items),
        )


async def store_counters(conn: asyncpg.Connection, execution_id: UUID, loops: dict[str, LoopRun]) -> None:
    if not loops:
        return
    await conn.executemany(
        """
        UPDATE noetl.loops SET total = $3, max_in_flight = $4, dispatched = $5, done = $6, failed = $7
        WHERE execution_id = $1 AND step = $2
        """,
        [
            (execution_id, step, r.total, r.max_in_flight, r.dispatched, r.done, r.failed)
            for step, r in loops.items()
        ],
    )


async def mark_running(conn: asyncpg.Connection, execution_id: UUID, running: list[tuple[str, int]]) -> None:
    if not running:
        return
    await conn.executemany(
        """
        UPDATE noetl.iterations SET status = 'running'
        WHERE execution_id = $1 AND step = $2 AND iteration = $3
        """,
        [(execution_id, step, index) for step, index in running],
    )


async def store_ends(conn: asyncpg.Connection, execution_id: UUID, ends: Iterable[IterationEnd]) -> None:
    ends = list(ends)
    if not ends:
        return
    await conn.executemany(
        """
        UPDATE noetl.iterations SET status = $4, result = $5, error = $6
        WHERE execution_id = $1 AND step = $2 AND iteration = $3
        """,
        [(execution_id, e.step, e.index, "done" if e.ok else "failed", e.result, e.error) for e in ends],
    )


async def results(conn: asyncpg.Connection, execution_id: UUID, step: str) -> list[Any]:
    """Every iteration's result in item order (read once, at ``loop.done``)."""
    rows = await conn.fetch(
        """
        SELECT result FROM noetl.iterations WHERE execution_id = $1 AND step = $2 ORDER BY iteration
        """,
        execution_id,
        step,
    )
    return [r["result"] for r in rows]
