"""Claims: a worker takes the lease of a pending command as its next attempt.

One statement on the hot path: the conditional UPDATE and the ``claimed`` event (and, when the
worker asks, the attempt's ``started`` event) commit together or not at all, and of any number
of claimers exactly one finds the row still ``pending``. A claim is named by its request id: the
same worker asking again with it (its answer was lost) gets the same lease back, extended.
The claim route, the batched claims and chained dispatch (``chains``) all claim through here.
"""

from __future__ import annotations

import secrets
from typing import Any
from uuid import UUID

import asyncpg

from noetl.server.problems import Conflict, NotFound

# What a claim answers (the lease secret is the attempt's: only its claimer learns it).
CLAIMED = (
    "command_id, execution_id, attempt, lease_secret AS lease, tool, timeout, lease_until, "
    "available_at, claimed_at"
)

# The claim of request ``$2`` by worker ``$1`` that is still held, its lease extended by ``$3``
# seconds; ``{where}`` narrows it (to one command, or to none more).
_AGAIN = f"""
    UPDATE noetl.commands
    SET lease_until = greatest(lease_until, now() + make_interval(secs => $3)), updated_at = now()
    WHERE status = 'claimed' AND worker_id = $1 AND claim_request = $2 {{where}}
    RETURNING {CLAIMED}, $4::boolean AS started
"""
_AGAIN_OF_COMMAND = _AGAIN.format(where="AND command_id = $5")
_AGAIN_OF_REQUEST = _AGAIN.format(where="")


async def claim(
    conn: asyncpg.Connection,
    command_id: UUID,
    worker_id: str,
    lease_seconds: float,
    request_id: str | None = None,
    start: bool = False,
) -> dict[str, Any]:
    """Take the lease of a pending command as the next attempt, with a new random lease secret
    (with ``start``, the attempt's ``started`` event too); the same claim again for a repeated
    ``request_id``; Conflict (or NotFound) otherwise. The execution stays RUNNING."""
    row = await conn.fetchrow(
        f"""
        WITH claimed AS (
            UPDATE noetl.commands
            SET status = 'claimed', attempt = attempt + 1, worker_id = $2,
                lease_until = now() + make_interval(secs => $3), claimed_at = now(), updated_at = now(),
                lease_secret = $4, claim_request = $5
            WHERE command_id = $1 AND status = 'pending'
            RETURNING {CLAIMED}
        ), event AS (
            INSERT INTO noetl.events (execution_id, command_id, type, payload, worker_id, attempt)
            SELECT execution_id, command_id, 'claimed', jsonb_build_object('lease_until', lease_until),
                   $2, attempt
            FROM claimed
            UNION ALL
            SELECT execution_id, command_id, 'started', '{{}}'::jsonb, $2, attempt FROM claimed WHERE $6
        )
        SELECT *, $6 AS started FROM claimed
        """,
        command_id,
        worker_id,
        lease_seconds,
        secrets.token_urlsafe(24),
        request_id,
        start,
    )
    if row is None and request_id is not None:
        row = await conn.fetchrow(_AGAIN_OF_COMMAND, worker_id, request_id, lease_seconds, start, command_id)
    if row is not None:
        return dict(row)
    state = await conn.fetchrow(
        "SELECT status, worker_id, attempt FROM noetl.commands WHERE command_id = $1", command_id
    )
    raise claim_refusal(command_id, state)


async def claimed_again(
    conn: asyncpg.Connection, worker_id: str, request_id: str, lease_seconds: float
) -> dict[str, Any] | None:
    """The command that ``worker_id`` claimed with ``request_id`` and still holds (whichever it
    is), its lease extended; None when there is none. Such a claim was made with ``start``."""
    row = await conn.fetchrow(_AGAIN_OF_REQUEST, worker_id, request_id, lease_seconds, True)
    return None if row is None else dict(row)


def claim_refusal(command_id: UUID, state: asyncpg.Record | None) -> Exception:
    """Why a claim of ``command_id`` was not applied, from its row's status, worker_id and attempt."""
    if state is None:
        return NotFound(f"no command {command_id}")
    if state["status"] == "claimed":
        return Conflict(
            f"command {command_id} is claimed by worker {state['worker_id']} (attempt {state['attempt']})"
        )
    return Conflict(f"command {command_id} is already {state['status']}")
