"""Commands: claim, heartbeat, events, release, the reaper's sweep and the outbox.

Every state change is one conditional UPDATE inside one transaction, so concurrent callers are
serialised by PostgreSQL's row lock: of any number of claimers exactly one finds the row still
``pending``; a completion is applied only while the sender holds the current attempt.
The command's ``attempt`` is the fencing token: it grows on every claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from noetl.protocol.nats import Notice
from noetl.protocol.words import FINAL_EVENTS, FINISHED
from noetl.server.problems import Conflict, NotFound


@dataclass(frozen=True)
class Finished:
    """A command that reached completed or failed, for the completion-latency metric."""

    status: str
    claimed_at: datetime
    finished_at: datetime


async def _set_execution_status(conn: asyncpg.Connection, execution_id: UUID, status: str) -> None:
    # One command per execution today: the execution's status is its command's.
    await conn.execute(
        "UPDATE noetl.executions SET status = $2, updated_at = now() WHERE execution_id = $1",
        execution_id,
        status,
    )


async def _add_event(
    conn: asyncpg.Connection,
    execution_id: UUID,
    command_id: UUID,
    type_: str,
    payload: dict[str, Any],
    worker_id: str | None,
    attempt: int,
    seq: int = 0,
) -> bool:
    """Append an event; False when the same (command, attempt, type, seq) is already stored."""
    stored = await conn.fetchval(
        """
        INSERT INTO noetl.events (execution_id, command_id, type, payload, worker_id, attempt, seq)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (command_id, attempt, type, seq) DO NOTHING
        RETURNING true
        """,
        execution_id,
        command_id,
        type_,
        payload,
        worker_id,
        attempt,
        seq,
    )
    return bool(stored)


async def _refusal(conn: asyncpg.Connection, command_id: UUID, worker_id: str, attempt: int) -> Exception:
    """Why a lease holder's call on ``command_id`` cannot be applied: NotFound or Conflict."""
    row = await conn.fetchrow(
        "SELECT status, worker_id, attempt FROM noetl.commands WHERE command_id = $1", command_id
    )
    if row is None:
        return NotFound(f"no command {command_id}")
    if row["status"] in FINISHED:
        return Conflict(f"command {command_id} is already {row['status']}")
    if row["status"] == "pending":
        return Conflict(f"command {command_id} is pending again: the lease of attempt {attempt} was lost")
    if row["attempt"] != attempt or row["worker_id"] != worker_id:
        return Conflict(
            f"command {command_id} is held by worker {row['worker_id']} as attempt {row['attempt']}; "
            f"the lease of {worker_id} (attempt {attempt}) was lost"
        )
    return Conflict(f"command {command_id} cannot take this call now")


async def claim(
    conn: asyncpg.Connection, command_id: UUID, worker_id: str, lease_seconds: float
) -> dict[str, Any]:
    """Take the lease of a pending command as the next attempt; Conflict when it is not pending.

    One statement (hot path: one round trip): the conditional UPDATE, the ``claimed`` event and
    the execution's status commit together or not at all.
    """
    row = await conn.fetchrow(
        """
        WITH claimed AS (
            UPDATE noetl.commands
            SET status = 'claimed', attempt = attempt + 1, worker_id = $2,
                lease_until = now() + make_interval(secs => $3), claimed_at = now(), updated_at = now()
            WHERE command_id = $1 AND status = 'pending'
            RETURNING command_id, execution_id, attempt, tool, timeout, lease_until, available_at, claimed_at
        ), event AS (
            INSERT INTO noetl.events (execution_id, command_id, type, payload, worker_id, attempt)
            SELECT execution_id, command_id, 'claimed', jsonb_build_object('lease_until', lease_until),
                   $2, attempt
            FROM claimed
        ), execution AS (
            UPDATE noetl.executions e SET status = 'claimed', updated_at = now()
            FROM claimed WHERE e.execution_id = claimed.execution_id
        )
        SELECT * FROM claimed
        """,
        command_id,
        worker_id,
        lease_seconds,
    )
    if row is not None:
        return dict(row)
    state = await conn.fetchrow(
        "SELECT status, worker_id, attempt FROM noetl.commands WHERE command_id = $1", command_id
    )
    if state is None:
        raise NotFound(f"no command {command_id}")
    if state["status"] == "claimed":
        raise Conflict(
            f"command {command_id} is claimed by worker {state['worker_id']} (attempt {state['attempt']})"
        )
    raise Conflict(f"command {command_id} is already {state['status']}")


async def heartbeat(
    conn: asyncpg.Connection, command_id: UUID, worker_id: str, attempt: int, lease_seconds: float
) -> datetime:
    """Extend the lease held by ``worker_id`` at ``attempt``; Conflict when it was lost."""
    lease_until = await conn.fetchval(
        """
        UPDATE noetl.commands SET lease_until = now() + make_interval(secs => $4), updated_at = now()
        WHERE command_id = $1 AND status = 'claimed' AND worker_id = $2 AND attempt = $3
        RETURNING lease_until
        """,
        command_id,
        worker_id,
        attempt,
        lease_seconds,
    )
    if lease_until is None:
        raise await _refusal(conn, command_id, worker_id, attempt)
    return lease_until


async def record_event(
    conn: asyncpg.Connection,
    command_id: UUID,
    worker_id: str,
    attempt: int,
    type_: str,
    payload: dict[str, Any],
    seq: int,
) -> tuple[bool, Finished | None]:
    """Store a worker's event; a ``completed`` or ``failed`` one also finishes the command.

    Returns (stored, finished): stored is False for a repeat of an event already stored from this
    worker. Raises Conflict when the sender does not hold the lease of ``attempt``.
    """
    async with conn.transaction():
        cmd = await conn.fetchrow(
            """
            SELECT execution_id, status, worker_id, attempt, claimed_at FROM noetl.commands
            WHERE command_id = $1 FOR UPDATE
            """,
            command_id,
        )
        if cmd is None:
            raise NotFound(f"no command {command_id}")
        # A repeat is recognised before the lease check: the retry of a completion that was
        # applied (but whose answer was lost) must not look like a stale completion.
        earlier = await conn.fetchrow(
            """
            SELECT worker_id FROM noetl.events
            WHERE command_id = $1 AND attempt = $2 AND type = $3 AND seq = $4
            """,
            command_id,
            attempt,
            type_,
            seq,
        )
        if earlier is not None and earlier["worker_id"] == worker_id:
            return False, None
        if cmd["status"] != "claimed" or cmd["worker_id"] != worker_id or cmd["attempt"] != attempt:
            raise await _refusal(conn, command_id, worker_id, attempt)
        await _add_event(conn, cmd["execution_id"], command_id, type_, payload, worker_id, attempt, seq)
        if type_ not in FINAL_EVENTS:
            return True, None
        finished_at = await conn.fetchval(
            """
            UPDATE noetl.commands
            SET status = $2, result = $3, error = $4, finished_at = now(), updated_at = now(),
                lease_until = NULL
            WHERE command_id = $1
            RETURNING finished_at
            """,
            command_id,
            type_,
            payload.get("result") if type_ == "completed" else None,
            payload.get("error") if type_ == "failed" else None,
        )
        await _set_execution_status(conn, cmd["execution_id"], type_)
    return True, Finished(type_, cmd["claimed_at"], finished_at)


async def release(conn: asyncpg.Connection, command_id: UUID, worker_id: str, attempt: int) -> Notice:
    """Give a lease back: the command is pending again (not counted against max_attempts)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """
            UPDATE noetl.commands
            SET status = 'pending', worker_id = NULL, lease_until = NULL, published_at = NULL,
                available_at = now(), updated_at = now()
            WHERE command_id = $1 AND status = 'claimed' AND worker_id = $2 AND attempt = $3
            RETURNING execution_id
            """,
            command_id,
            worker_id,
            attempt,
        )
        if row is None:
            raise await _refusal(conn, command_id, worker_id, attempt)
        await _add_event(conn, row["execution_id"], command_id, "released", {}, worker_id, attempt)
        await _set_execution_status(conn, row["execution_id"], "pending")
    return Notice(command_id=command_id, execution_id=row["execution_id"], attempt=attempt + 1)


async def reap_expired(conn: asyncpg.Connection, limit: int) -> tuple[list[Notice], int]:
    """Return expired leases to pending, or make them dead after max_attempts lost leases.

    Returns the notices to publish after commit and how many commands died. Rows another
    replica is reaping are skipped (SKIP LOCKED).
    """
    async with conn.transaction():
        rows = await conn.fetch(
            """
            WITH expired AS (
                SELECT command_id, worker_id AS old_worker FROM noetl.commands
                WHERE status = 'claimed' AND lease_until < now()
                ORDER BY lease_until
                LIMIT $1
                FOR UPDATE SKIP LOCKED
            )
            UPDATE noetl.commands c
            SET lost_leases = c.lost_leases + 1,
                status = CASE WHEN c.lost_leases + 1 >= c.max_attempts THEN 'dead' ELSE 'pending' END,
                finished_at = CASE WHEN c.lost_leases + 1 >= c.max_attempts THEN now() END,
                error = CASE WHEN c.lost_leases + 1 >= c.max_attempts
                    THEN 'lease expired ' || (c.lost_leases + 1) || ' times (max_attempts '
                         || c.max_attempts || '): the command is dead' END,
                worker_id = NULL, lease_until = NULL, published_at = NULL,
                available_at = now(), updated_at = now()
            FROM expired
            WHERE c.command_id = expired.command_id
            RETURNING c.command_id, c.execution_id, c.status, c.attempt, c.lost_leases, c.max_attempts,
                      c.error, expired.old_worker
            """,
            limit,
        )
        notices: list[Notice] = []
        dead = 0
        for row in rows:
            if row["status"] == "dead":
                dead += 1
                await _add_event(
                    conn,
                    row["execution_id"],
                    row["command_id"],
                    "failed",
                    {"error": row["error"], "dead": True, "worker_id": row["old_worker"]},
                    None,
                    row["attempt"],
                )
            else:
                notices.append(Notice(row["command_id"], row["execution_id"], row["attempt"] + 1))
                await _add_event(
                    conn,
                    row["execution_id"],
                    row["command_id"],
                    "lease_expired",
                    {"lost_leases": row["lost_leases"], "max_attempts": row["max_attempts"]},
                    row["old_worker"],
                    row["attempt"],
                )
            await _set_execution_status(conn, row["execution_id"], row["status"])
    return notices, dead


async def unpublished(conn: asyncpg.Connection, limit: int) -> list[Notice]:
    """Pending commands whose notice JetStream has not acknowledged yet, oldest first."""
    rows = await conn.fetch(
        """
        SELECT command_id, execution_id, attempt FROM noetl.commands
        WHERE status = 'pending' AND published_at IS NULL
        ORDER BY available_at
        LIMIT $1
        """,
        limit,
    )
    return [Notice(r["command_id"], r["execution_id"], r["attempt"] + 1) for r in rows]


async def mark_published(conn: asyncpg.Connection, notices: list[Notice]) -> None:
    """Record the acks; a command claimed or re-queued in between keeps its own state."""
    if not notices:
        return
    await conn.execute(
        """
        UPDATE noetl.commands c SET published_at = now()
        FROM unnest($1::uuid[], $2::int[]) AS n(command_id, attempt)
        WHERE c.command_id = n.command_id AND c.attempt = n.attempt - 1
          AND c.status = 'pending' AND c.published_at IS NULL
        """,
        [n.command_id for n in notices],
        [n.attempt for n in notices],
    )


async def count_by_status(conn: asyncpg.Connection) -> tuple[dict[str, int], int]:
    """Commands per status, and how many pending ones still wait for their notice."""
    rows = await conn.fetch("SELECT status, count(*) AS n FROM noetl.commands GROUP BY status")
    backlog = await conn.fetchval(
        "SELECT count(*) FROM noetl.commands WHERE status = 'pending' AND published_at IS NULL"
    )
    return {r["status"]: int(r["n"]) for r in rows}, int(backlog)
