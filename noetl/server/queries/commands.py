"""Commands: heartbeat, events, release, the reaper's sweep and the outbox (the claim: ``claims``).

Every state change is one conditional UPDATE inside one transaction, so concurrent callers are
serialised by PostgreSQL's row lock: of any number of claimers exactly one finds the row still
``pending``; a completion is applied only while the sender holds the current attempt.
The command's ``attempt`` is the fencing token: it grows on every claim.

A command that ends (its final event, or its last lease expiring) ends its `noetl submit`
execution, or, for a playbook step, hands over to ``transitions`` in the same transaction. Those
paths lock the execution row before the command's, like cancel does, so they never deadlock.
"""

from __future__ import annotations

import contextlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from noetl.protocol.nats import Notice
from noetl.protocol.words import FINAL_EVENTS, FINISHED
from noetl.server.db import UNAVAILABLE_ERRORS
from noetl.server.problems import Conflict, NotFound
from noetl.server.queries import chains, locks, transitions


@dataclass(frozen=True)
class Finished:
    """A command that reached completed or failed, for the completion-latency metric."""

    status: str
    claimed_at: datetime
    finished_at: datetime


async def _end_submit_execution(conn: asyncpg.Connection, execution_id: UUID, command_status: str) -> None:
    """A `noetl submit` execution ends with its one command: completed -> COMPLETED, else FAILED."""
    await conn.execute(
        """
        UPDATE noetl.executions SET status = $2, result = c.result, error = c.error, finished_at = now(),
            updated_at = now()
        FROM noetl.commands c
        WHERE executions.execution_id = $1 AND c.execution_id = $1 AND executions.status = 'RUNNING'
        """,
        execution_id,
        "COMPLETED" if command_status == "completed" else "FAILED",
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
    return Conflict(
        f"command {command_id}: wrong lease secret for attempt {attempt}; only its claim's answer carries it"
    )


def _holds(cmd: asyncpg.Record, worker_id: str, attempt: int, lease: str) -> bool:
    """Whether the caller holds the current lease: its worker, its attempt and its secret."""
    secret = cmd["lease_secret"]
    return (
        cmd["status"] == "claimed"
        and cmd["worker_id"] == worker_id
        and cmd["attempt"] == attempt
        and secret is not None
        and hmac.compare_digest(secret.encode(), lease.encode())
    )


async def heartbeat(
    conn: asyncpg.Connection, command_id: UUID, worker_id: str, attempt: int, lease: str, lease_seconds: float
) -> datetime:
    """Extend the lease held by ``worker_id`` at ``attempt`` with secret ``lease``; Conflict when it
    was lost (or the secret is wrong)."""
    lease_until = await conn.fetchval(
        """
        UPDATE noetl.commands SET lease_until = now() + make_interval(secs => $4), updated_at = now()
        WHERE command_id = $1 AND status = 'claimed' AND worker_id = $2 AND attempt = $3
          AND lease_secret = $5
        RETURNING lease_until
        """,
        command_id,
        worker_id,
        attempt,
        lease_seconds,
        lease,
    )
    if lease_until is None:
        raise await _refusal(conn, command_id, worker_id, attempt)
    return lease_until


@dataclass(frozen=True)
class Recorded:
    """What storing a worker's event did: ``stored`` is False for a repeat; ``finished`` is set
    when the event ended the command; ``notices`` are the next steps' commands to publish;
    ``handed`` the one claimed for the sender instead (chained dispatch: ``chains``)."""

    stored: bool
    finished: Finished | None = None
    notices: tuple[Notice, ...] = ()
    handed: dict[str, Any] | None = None


async def record_event(
    conn: asyncpg.Connection,
    command_id: UUID,
    worker_id: str,
    attempt: int,
    lease: str,
    type_: str,
    payload: dict[str, Any],
    seq: int,
    take: chains.Take | None = None,
) -> Recorded:
    """Store a worker's event; a ``completed`` or ``failed`` one also finishes the command and,
    for a playbook step, lets the engine decide what follows (same transaction), and with
    ``take`` claims one of the commands that follow for the sender.

    Raises Conflict when the sender does not hold the lease of ``attempt``.
    """
    async with by_key(conn) if type_ in FINAL_EVENTS else conn.transaction():
        if type_ in FINAL_EVENTS:
            await locks.lock_execution_of(conn, command_id)
        final = type_ in FINAL_EVENTS  # its execution is locked: the state can be read with the row
        check = event_check(command="$1", attempt="$2", type_="$3", seq="$4", state=final)
        cmd = await conn.fetchrow(
            f"SELECT {check} FROM noetl.commands c WHERE c.command_id = $1 FOR UPDATE OF c",
            command_id,
            attempt,
            type_,
            seq,
        )
        if not await is_new_event(conn, cmd, command_id, worker_id, attempt, lease):
            return await repeated(conn, type_, take)
        return await apply_event(conn, cmd, command_id, worker_id, attempt, type_, payload, seq, take)


async def repeated(conn: asyncpg.Connection, type_: str, take: chains.Take | None) -> Recorded:
    """A repeat of a stored event; a final one that was answered with a command (its answer
    lost) gets that command again while its sender still holds it."""
    if take is None or type_ not in FINAL_EVENTS:
        return Recorded(stored=False)
    return Recorded(stored=False, handed=await chains.handed_before(conn, take))


def event_check(*, command: str, attempt: str, type_: str, seq: str, state: bool = False) -> str:
    """The columns deciding on an event needs of its command's row ``c``, read in the statement
    that locks the row; the arguments are the SQL of the event's command, attempt, type and seq.
    With ``state``, a final event of a playbook step's command comes with what its transition reads
    (``transitions.state_sql``, column ``state``): the statement follows the execution's lock.

    A repeat is recognised before the lease check: the retry of a completion that was applied
    (but whose answer was lost) must not look like a stale completion. The event is looked up in
    the statement that locks the command. Its snapshot may predate a racing repeat's commit: a
    final event's cannot (it is taken after the execution's lock, which every final event of the
    command holds first); another event's insert catches it.
    """
    finals = ", ".join(f"'{t}'" for t in sorted(FINAL_EVENTS))
    known = (
        f", CASE WHEN {type_} IN ({finals}) AND c.step IS NOT NULL "
        f"THEN {transitions.state_sql('c.execution_id')} END AS state"
        if state
        else ""
    )
    return f"""
        c.command_id, c.execution_id, c.status, c.worker_id, c.attempt, c.lease_secret, c.claimed_at,
        c.step, c.iteration,
        (SELECT e.worker_id FROM noetl.events e
         WHERE e.command_id = {command} AND e.attempt = {attempt} AND e.type = {type_} AND e.seq = {seq}
        ) AS earlier_worker
        {known}
    """


async def is_new_event(
    conn: asyncpg.Connection,
    cmd: asyncpg.Record | None,
    command_id: UUID,
    worker_id: str,
    attempt: int,
    lease: str,
) -> bool:
    """Whether the event read with ``event_check`` into ``cmd`` is new (False: a repeat of one
    stored); NotFound or Conflict when its sender does not hold the lease of ``attempt``."""
    if cmd is None:
        raise NotFound(f"no command {command_id}")
    same_secret = cmd["attempt"] == attempt and hmac.compare_digest(
        (cmd["lease_secret"] or "").encode(), lease.encode()
    )
    if cmd["earlier_worker"] == worker_id and same_secret:
        return False
    if not _holds(cmd, worker_id, attempt, lease):
        raise await _refusal(conn, command_id, worker_id, attempt)
    return True


async def apply_event(
    conn: asyncpg.Connection,
    cmd: asyncpg.Record,
    command_id: UUID,
    worker_id: str,
    attempt: int,
    type_: str,
    payload: dict[str, Any],
    seq: int,
    take: chains.Take | None = None,
    stale: bool = False,
) -> Recorded:
    """Store a new event of the lease holder, its command's row locked (``is_new_event`` said so);
    inside the transaction that holds the execution's lock for a final event. With ``take``, the
    first command the engine creates is claimed for the sender (``chains.hand``). The state read
    with the row (``event_check``), if any, is used unless ``stale`` (a transition of the same
    execution came in between)."""
    if type_ not in FINAL_EVENTS:
        # A racing repeat (its snapshot predates the other's commit) is caught by the insert.
        stored = await _add_event(
            conn, cmd["execution_id"], command_id, type_, payload, worker_id, attempt, seq
        )
        return Recorded(stored=stored)
    submit = cmd["step"] is None
    final = Final(command_id, cmd["execution_id"], type_, payload, worker_id, attempt, seq, submit)
    (finished_at,) = await finish(conn, [final])
    notices: list[Notice] = []
    if not submit:
        notices = await transitions.step_command_finished(
            conn,
            cmd["execution_id"],
            cmd["step"],
            cmd["iteration"],
            type_ == "completed",
            final.result,
            final.error,
            payload,
            None if stale else cmd.get("state"),
        )
    handed = None
    if take is not None and notices:
        handed, notices = await chains.hand(conn, take, notices)
    return Recorded(True, Finished(type_, cmd["claimed_at"], finished_at), tuple(notices), handed)


# What ``by_key`` sets, sent with its BEGIN in one simple query.
_BY_KEY = "SET LOCAL enable_seqscan = off; SET LOCAL plan_cache_mode = force_generic_plan"


@contextlib.asynccontextmanager
async def by_key(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """A transaction whose plans find rows by their key, begun with its settings in one round trip
    (a step's end pays for each round trip, on both sides of the connection).

    The set statements of these transactions join arrays of keys to tables. PostgreSQL caches a
    generic plan of a prepared statement after five runs, made for the tables' size then: one
    made while they were small scans them whole once they have grown (measured: 22 ms instead of
    0.5 ms to lock 3 executions among 20,000). With sequential scans off (``enable_seqscan``),
    every plan made here finds rows by their key. And the plans are generic from the first run
    (``plan_cache_mode``): knowing the arrays' length, PostgreSQL found a custom plan cheaper
    than the generic one at every call and planned three statements of every step's end anew
    (measured: 0.7 ms of the database's CPU a step). Nested in a transaction, it is a savepoint.
    """
    if conn.is_in_transaction():
        async with conn.transaction():
            await conn.execute(_BY_KEY)
            yield
        return
    await conn.execute(f"BEGIN; {_BY_KEY}")
    try:
        yield
    except BaseException:
        # A broken connection cannot roll back: the pool discards it (or rolls back on release).
        with contextlib.suppress(*UNAVAILABLE_ERRORS):
            await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")


@dataclass(frozen=True)
class Final:
    """A lease holder's new ``completed`` or ``failed`` event, checked and ready to apply."""

    command_id: UUID
    execution_id: UUID
    type_: str
    payload: dict[str, Any]
    worker_id: str
    attempt: int
    seq: int
    submit: bool  # a `noetl submit` command: its execution ends with it

    @property
    def result(self) -> Any:
        return self.payload.get("result") if self.type_ == "completed" else None

    @property
    def error(self) -> str | None:
        return self.payload.get("error") if self.type_ == "failed" else None


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


async def finish(conn: asyncpg.Connection, finals: Sequence[Final]) -> list[datetime]:
    """Record final events, end their commands and, for `noetl submit` ones, their executions:
    one statement for them all (each a different command); each command's finish time, in order.
    A playbook step's transition is the caller's, after it. Call inside a ``by_key`` transaction."""
    # JSON goes as text, cast in SQL: asyncpg would read a list inside a jsonb[] as a dimension.
    # Rows are found by their key: `(...) IS TRUE` keeps the planner off the status index, which
    # reads every RUNNING execution, a whole backlog, when its statistics predate the backlog.
    rows = await conn.fetch(
        """
        WITH ask AS (
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::int[],
                                 $7::int[], $8::text[], $9::text[], $10::boolean[])
                WITH ORDINALITY AS a(command_id, execution_id, type, payload, worker_id, attempt, seq,
                                     result, error, submit, ord)
        ), event AS (
            INSERT INTO noetl.events (execution_id, command_id, type, payload, worker_id, attempt, seq)
            SELECT execution_id, command_id, type, payload::jsonb, worker_id, attempt, seq FROM ask
            ON CONFLICT (command_id, attempt, type, seq) DO NOTHING
        ), command AS (
            UPDATE noetl.commands c
            SET status = a.type, result = a.result::jsonb, error = a.error, finished_at = now(),
                updated_at = now(), lease_until = NULL
            FROM ask a
            WHERE c.command_id = a.command_id
            RETURNING a.ord, a.submit, a.type, c.execution_id, c.finished_at, c.result, c.error
        ), execution AS (
            UPDATE noetl.executions e
            SET status = CASE command.type WHEN 'completed' THEN 'COMPLETED' ELSE 'FAILED' END,
                result = command.result, error = command.error, finished_at = now(), updated_at = now()
            FROM command
            WHERE command.submit AND e.execution_id = command.execution_id
              AND (e.status = 'RUNNING') IS TRUE  -- by key: never the status index (see below)
        )
        SELECT finished_at FROM command ORDER BY ord
        """,
        [f.command_id for f in finals],
        [f.execution_id for f in finals],
        [f.type_ for f in finals],
        [json.dumps(f.payload) for f in finals],
        [f.worker_id for f in finals],
        [f.attempt for f in finals],
        [f.seq for f in finals],
        [_json(f.result) for f in finals],
        [f.error for f in finals],
        [f.submit for f in finals],
    )
    return [row["finished_at"] for row in rows]


async def release(
    conn: asyncpg.Connection, command_id: UUID, worker_id: str, attempt: int, lease: str
) -> Notice:
    """Give a lease back: the command is pending again (not counted against max_attempts)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """
            UPDATE noetl.commands
            SET status = 'pending', worker_id = NULL, lease_until = NULL, published_at = NULL,
                lease_secret = NULL, claim_request = NULL, available_at = now(), updated_at = now()
            WHERE command_id = $1 AND status = 'claimed' AND worker_id = $2 AND attempt = $3
              AND lease_secret = $4
            RETURNING execution_id
            """,
            command_id,
            worker_id,
            attempt,
            lease,
        )
        if row is None:
            raise await _refusal(conn, command_id, worker_id, attempt)
        await _add_event(conn, row["execution_id"], command_id, "released", {}, worker_id, attempt)
    return Notice(command_id=command_id, execution_id=row["execution_id"], attempt=attempt + 1)


async def requeue_expired(conn: asyncpg.Connection, limit: int) -> list[Notice]:
    """Return expired leases that have attempts left to pending; the notices to publish after
    commit. Rows another replica is reaping are skipped (SKIP LOCKED). The execution is not
    touched: it stays RUNNING (its lock is not needed)."""
    async with conn.transaction():
        rows = await conn.fetch(
            """
            WITH expired AS (
                SELECT command_id, worker_id AS old_worker FROM noetl.commands
                WHERE status = 'claimed' AND lease_until < now() AND lost_leases + 1 < max_attempts
                ORDER BY lease_until
                LIMIT $1
                FOR UPDATE SKIP LOCKED
            )
            UPDATE noetl.commands c
            SET lost_leases = c.lost_leases + 1, status = 'pending',
                worker_id = NULL, lease_until = NULL, published_at = NULL,
                lease_secret = NULL, claim_request = NULL,
                available_at = now(), updated_at = now()
            FROM expired
            WHERE c.command_id = expired.command_id
            RETURNING c.command_id, c.execution_id, c.attempt, c.lost_leases, c.max_attempts,
                      expired.old_worker
            """,
            limit,
        )
        await conn.executemany(
            """
            INSERT INTO noetl.events (execution_id, command_id, type, payload, worker_id, attempt)
            VALUES ($1, $2, 'lease_expired', $3, $4, $5)
            """,
            [
                (
                    r["execution_id"],
                    r["command_id"],
                    {"lost_leases": r["lost_leases"], "max_attempts": r["max_attempts"]},
                    r["old_worker"],
                    r["attempt"],
                )
                for r in rows
            ],
        )
    return [Notice(r["command_id"], r["execution_id"], r["attempt"] + 1) for r in rows]


async def dying(conn: asyncpg.Connection, limit: int) -> list[UUID]:
    """Expired leases that were the command's last attempt (``kill_expired`` ends each)."""
    rows = await conn.fetch(
        """
        SELECT command_id FROM noetl.commands
        WHERE status = 'claimed' AND lease_until < now() AND lost_leases + 1 >= max_attempts
        ORDER BY lease_until LIMIT $1
        """,
        limit,
    )
    return [r["command_id"] for r in rows]


async def kill_expired(conn: asyncpg.Connection, command_id: UUID) -> list[Notice] | None:
    """Make a command whose last lease expired ``dead`` with a ``failed`` event, and end its
    execution (`noetl submit`) or its step (playbook) in the same transaction. None when it is
    no longer expired (its worker came back, or another replica did it)."""
    async with conn.transaction():
        await locks.lock_execution_of(conn, command_id)
        row = await conn.fetchrow(
            """
            WITH old AS (
                SELECT command_id, worker_id FROM noetl.commands
                WHERE command_id = $1 AND status = 'claimed' AND lease_until < now() FOR UPDATE
            )
            UPDATE noetl.commands c
            SET lost_leases = c.lost_leases + 1, status = 'dead', finished_at = now(),
                error = 'lease expired ' || (c.lost_leases + 1) || ' times (max_attempts '
                        || c.max_attempts || '): the command is dead',
                worker_id = NULL, lease_until = NULL, updated_at = now()
            FROM old WHERE c.command_id = old.command_id
            RETURNING c.execution_id, c.step, c.iteration, c.attempt, c.error, old.worker_id AS old_worker
            """,
            command_id,
        )
        if row is None:
            return None
        await _add_event(
            conn,
            row["execution_id"],
            command_id,
            "failed",
            {"error": row["error"], "dead": True, "worker_id": row["old_worker"]},
            None,
            row["attempt"],
        )
        if row["step"] is None:
            await _end_submit_execution(conn, row["execution_id"], "dead")
            return []
        return await transitions.step_command_finished(
            conn, row["execution_id"], row["step"], row["iteration"], False, None, row["error"]
        )


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


async def lost_notices(conn: asyncpg.Connection, older_than: float, limit: int) -> list[Notice]:
    """Pending commands whose notice was acknowledged ``older_than`` seconds ago and never claimed:
    NATS lost it (or every worker is busy: then the extra notice is skipped at claim)."""
    rows = await conn.fetch(
        """
        SELECT command_id, execution_id, attempt, republished FROM noetl.commands
        WHERE status = 'pending' AND published_at < now() - make_interval(secs => $1)
        ORDER BY published_at
        LIMIT $2
        """,
        older_than,
        limit,
    )
    return [Notice(r["command_id"], r["execution_id"], r["attempt"] + 1, r["republished"] + 1) for r in rows]


async def mark_republished(conn: asyncpg.Connection, notices: list[Notice]) -> None:
    """Record re-published notices: their count (so the next one gets a new message id), and a new
    publish time while the command is still pending (a worker may have claimed it already)."""
    if not notices:
        return
    await conn.execute(
        """
        UPDATE noetl.commands c
        SET republished = n.republish,
            published_at = CASE WHEN c.status = 'pending' THEN now() ELSE c.published_at END
        FROM unnest($1::uuid[], $2::int[], $3::int[]) AS n(command_id, attempt, republish)
        WHERE c.command_id = n.command_id AND c.attempt >= n.attempt - 1
          AND c.republished < n.republish
        """,
        [n.command_id for n in notices],
        [n.attempt for n in notices],
        [n.republish for n in notices],
    )


async def count_by_status(conn: asyncpg.Connection) -> tuple[dict[str, int], int]:
    """Commands per status, and how many pending ones still wait for their notice."""
    rows = await conn.fetch("SELECT status, count(*) AS n FROM noetl.commands GROUP BY status")
    backlog = await conn.fetchval(
        "SELECT count(*) FROM noetl.commands WHERE status = 'pending' AND published_at IS NULL"
    )
    return {r["status"]: int(r["n"]) for r in rows}, int(backlog)
