"""Batches of a worker's calls: many claims in one statement, many events in one transaction.

Each item gets exactly the outcome its single call (``claims.claim``, ``commands.record_event``)
would: the same lease rules, fencing, request-id and seq idempotency, the same refusals. An
item's refusal (NotFound, Conflict, a value PostgreSQL cannot store) is returned in its place, as
a value, and never fails the other items.

Locks are taken in one order (executions by id, then commands by id), so two batches over the
same rows wait for each other instead of deadlocking.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from noetl.protocol.words import FINAL_EVENTS
from noetl.server.problems import Conflict, Invalid, NotFound
from noetl.server.queries import chains, claims, commands
from noetl.server.queries.commands import Finished, Recorded

# What an item's call can be refused with, returned in its place (the route answers its status).
REFUSALS = (NotFound, Conflict, Invalid, asyncpg.DataError)


@dataclass(frozen=True)
class ClaimAsk:
    command_id: UUID
    worker_id: str
    lease_seconds: float
    request_id: str | None
    start: bool


@dataclass(frozen=True)
class EventAsk:
    command_id: UUID
    worker_id: str
    attempt: int
    lease: str
    type_: str
    payload: dict[str, Any]
    seq: int
    take: chains.Take | None = None  # chained dispatch: the sender can run one more command


_CLAIMED = (
    "c.command_id, c.execution_id, c.attempt, c.lease_secret AS lease, c.tool, c.timeout, "
    "c.lease_until, c.available_at, c.claimed_at"
)

# The first ask of each command takes it if it is pending (a later one of the same command is
# then refused, as the second of two single claims would be); the `claimed` events, and with
# `start` the `started` ones, are written in the same statement.
# Rows are found by their key (see ``commands.by_key``): the status tests are written
# `(...) IS TRUE` so that the planner cannot use the status index instead, which would read every
# pending (or claimed) command, a whole backlog, for each batch when its statistics predate it.
_CLAIM = f"""
    WITH ask AS (
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::text[], $5::text[], $6::boolean[])
            WITH ORDINALITY AS a(command_id, worker_id, lease_seconds, secret, request_id, start, ord)
    ), firsts AS (
        SELECT DISTINCT ON (command_id) * FROM ask ORDER BY command_id, ord
    ), target AS (
        SELECT c.command_id FROM noetl.commands c
        WHERE c.command_id = ANY($1::uuid[]) AND (c.status = 'pending') IS TRUE
        ORDER BY c.command_id
        FOR UPDATE OF c
    ), claimed AS (
        UPDATE noetl.commands c
        SET status = 'claimed', attempt = c.attempt + 1, worker_id = f.worker_id,
            lease_until = now() + make_interval(secs => f.lease_seconds), claimed_at = now(),
            updated_at = now(), lease_secret = f.secret, claim_request = f.request_id
        FROM firsts f JOIN target t ON t.command_id = f.command_id
        WHERE c.command_id = f.command_id AND c.command_id = ANY($1::uuid[])
          AND (c.status = 'pending') IS TRUE
        RETURNING f.ord, f.start AS started, c.worker_id, {_CLAIMED}
    ), event AS (
        INSERT INTO noetl.events (execution_id, command_id, type, payload, worker_id, attempt)
        SELECT execution_id, command_id, 'claimed', jsonb_build_object('lease_until', lease_until),
               worker_id, attempt
        FROM claimed
        UNION ALL
        SELECT execution_id, command_id, 'started', '{{}}'::jsonb, worker_id, attempt
        FROM claimed WHERE started
    )
    SELECT * FROM claimed
"""

# The same worker's claim retried with its request id (its answer was lost): the same lease back.
_CLAIM_AGAIN = f"""
    UPDATE noetl.commands c
    SET lease_until = greatest(c.lease_until, now() + make_interval(secs => a.lease_seconds)),
        updated_at = now()
    FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::text[], $5::boolean[], $6::bigint[])
        AS a(command_id, worker_id, lease_seconds, request_id, start, ord)
    WHERE c.command_id = a.command_id AND c.command_id = ANY($1::uuid[]) AND (c.status = 'claimed') IS TRUE
      AND c.worker_id = a.worker_id AND c.claim_request = a.request_id
    RETURNING a.ord, a.start AS started, {_CLAIMED}
"""


async def claim_all(conn: asyncpg.Connection, asks: Sequence[ClaimAsk]) -> list[dict[str, Any] | Exception]:
    """Each ask's claim (as ``claims.claim`` returns it) or its refusal, in the asks' order.

    One statement when every ask is new and finds its command pending (the hot path); a retried
    ask, then the refused ones, each cost one more statement for all of them. They run in one
    transaction only so that ``commands.by_key`` holds for them.
    """
    async with commands.by_key(conn):
        return await _claim_all(conn, asks)


async def _claim_all(conn: asyncpg.Connection, asks: Sequence[ClaimAsk]) -> list[dict[str, Any] | Exception]:
    found: dict[int, dict[str, Any]] = {}

    def keep(rows: list[asyncpg.Record]) -> None:
        for row in rows:
            claimed = dict(row)
            found.setdefault(int(claimed.pop("ord")) - 1, claimed)
            claimed.pop("worker_id", None)

    keep(
        await conn.fetch(
            _CLAIM,
            [a.command_id for a in asks],
            [a.worker_id for a in asks],
            [a.lease_seconds for a in asks],
            [secrets.token_urlsafe(24) for _ in asks],
            [a.request_id for a in asks],
            [a.start for a in asks],
        )
    )
    again = [i for i, a in enumerate(asks) if i not in found and a.request_id is not None]
    if again:
        keep(
            await conn.fetch(
                _CLAIM_AGAIN,
                [asks[i].command_id for i in again],
                [asks[i].worker_id for i in again],
                [asks[i].lease_seconds for i in again],
                [asks[i].request_id for i in again],
                [asks[i].start for i in again],
                [i + 1 for i in again],
            )
        )
    refused = [i for i in range(len(asks)) if i not in found]
    states: dict[UUID, asyncpg.Record] = {}
    if refused:
        rows = await conn.fetch(
            """
            SELECT command_id, status, worker_id, attempt FROM noetl.commands
            WHERE command_id = ANY($1::uuid[])
            """,
            [asks[i].command_id for i in refused],
        )
        states = {row["command_id"]: row for row in rows}
    return [
        found[i] if i in found else claims.claim_refusal(ask.command_id, states.get(ask.command_id))
        for i, ask in enumerate(asks)
    ]


# Lock the top-level executions of these commands, by id; name the commands whose execution has
# a parent (their lock order starts at the root: they are recorded apart, each on its own).
_LOCK_EXECUTIONS = """
    WITH target AS (
        SELECT command_id, execution_id FROM noetl.commands WHERE command_id = ANY($1::uuid[])
    ), locked AS (
        SELECT e.execution_id FROM noetl.executions e
        WHERE e.execution_id IN (SELECT execution_id FROM target) AND e.parent_execution_id IS NULL
        ORDER BY e.execution_id
        FOR UPDATE OF e
    )
    SELECT t.command_id FROM target t LEFT JOIN locked l ON l.execution_id = t.execution_id
    WHERE l.execution_id IS NULL
"""

_ASKED = commands.event_check(
    command="a.command_id", attempt="a.attempt", type_="a.type", seq="a.seq", state=True
)
_CHECK = f"""
    SELECT a.ord, {_ASKED}
    FROM unnest($1::uuid[], $2::int[], $3::text[], $4::int[], $5::bigint[])
        AS a(command_id, attempt, type, seq, ord)
    JOIN noetl.commands c ON c.command_id = a.command_id
    ORDER BY c.command_id
    FOR UPDATE OF c
"""


async def record_all(conn: asyncpg.Connection, asks: Sequence[EventAsk]) -> list[Recorded | Exception]:
    """Each ask's ``Recorded`` or its refusal, in the asks' order.

    One transaction for them all: the executions' locks, the commands' locks with what deciding
    needs, the final events of `noetl submit` commands (one statement each), then each other
    event's own statement (and for a playbook step, the engine's transition). Two asks of one
    command, and final events of a sub-playbook's steps, are recorded apart afterwards, each in
    its own transaction as a single call would be. When an ask fails after it started writing,
    the transaction is rolled back and every ask is recorded apart, so that failure is its own
    and the others are stored.
    """
    apart: list[int] = []
    together: list[int] = []
    seen: set[UUID] = set()
    for i, ask in enumerate(asks):
        (apart if ask.command_id in seen else together).append(i)
        seen.add(ask.command_id)
    results: dict[int, Recorded | Exception] = {}
    try:
        async with commands.by_key(conn):
            await _record_together(conn, asks, together, apart, results)
    except (*REFUSALS, asyncpg.DeadlockDetectedError):
        results.clear()
        apart = list(range(len(asks)))
    for i in sorted(apart):
        ask = asks[i]
        try:
            results[i] = await commands.record_event(
                conn,
                ask.command_id,
                ask.worker_id,
                ask.attempt,
                ask.lease,
                ask.type_,
                ask.payload,
                ask.seq,
                ask.take,
            )
        except REFUSALS as exc:
            results[i] = exc
    return [results[i] for i in range(len(asks))]


async def _record_together(
    conn: asyncpg.Connection,
    asks: Sequence[EventAsk],
    together: list[int],
    apart: list[int],
    results: dict[int, Recorded | Exception],
) -> None:
    finals = [asks[i].command_id for i in together if asks[i].type_ in FINAL_EVENTS]
    if finals:
        nested = {row["command_id"] for row in await conn.fetch(_LOCK_EXECUTIONS, finals)}
        if nested:
            apart.extend(
                i for i in together if asks[i].type_ in FINAL_EVENTS and asks[i].command_id in nested
            )
            together = [i for i in together if i not in apart]
    if not together:
        return
    rows = await conn.fetch(
        _CHECK,
        [asks[i].command_id for i in together],
        [asks[i].attempt for i in together],
        [asks[i].type_ for i in together],
        [asks[i].seq for i in together],
        [i for i in together],
    )
    for i in together:
        results[i] = NotFound(f"no command {asks[i].command_id}")  # unless its row is found
    submits: list[tuple[int, asyncpg.Record]] = []  # `noetl submit` commands end in one statement
    moved: set[UUID] = set()  # executions a transition changed since their state was read
    for cmd in rows:
        i = int(cmd["ord"])
        ask = asks[i]
        try:
            new = await commands.is_new_event(
                conn, cmd, ask.command_id, ask.worker_id, ask.attempt, ask.lease
            )
        except (NotFound, Conflict) as exc:
            results[i] = exc  # refused before writing anything: the transaction goes on
            continue
        if not new:
            results[i] = await commands.repeated(conn, ask.type_, ask.take)
        elif ask.type_ in FINAL_EVENTS and cmd["step"] is None:
            submits.append((i, cmd))
        else:
            results[i] = await commands.apply_event(
                conn,
                cmd,
                ask.command_id,
                ask.worker_id,
                ask.attempt,
                ask.type_,
                ask.payload,
                ask.seq,
                ask.take,
                stale=cmd["execution_id"] in moved,
            )
            if ask.type_ in FINAL_EVENTS:
                moved.add(cmd["execution_id"])
    if submits:
        ending = [
            commands.Final(
                asks[i].command_id,
                cmd["execution_id"],
                asks[i].type_,
                asks[i].payload,
                asks[i].worker_id,
                asks[i].attempt,
                asks[i].seq,
                submit=True,
            )
            for i, cmd in submits
        ]
        ended = await commands.finish(conn, ending)
        for (i, cmd), finished_at in zip(submits, ended, strict=True):
            results[i] = Recorded(True, Finished(asks[i].type_, cmd["claimed_at"], finished_at))
