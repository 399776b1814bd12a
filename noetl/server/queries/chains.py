"""Chained dispatch: a command's end hands one of the commands it caused to the worker that
reported it, in the same transaction and the same answer.

A linear playbook's next step would otherwise cost a NATS publish, a fetch, an ack and a claim
request. The worker says in its final event that it can take one more (``take``: the slot this
command frees); the claim made for it is the claim route's own statement (``claims.claim``:
same lease, same attempt count, the same ``claimed`` and ``started`` events). The handed
command's notice is left out of the ones published after commit, so no other worker fetches it;
it stays unpublished (``published_at`` NULL) while claimed, and the reaper re-queues it at lease
expiry and publishes it then, as it does any expired lease.

The claim's request id names the report (``key``): a report retried after its answer was lost
is a repeat, and gets the same claim back instead of leaving it to expire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from noetl.protocol.nats import Notice
from noetl.server.problems import Conflict, NotFound
from noetl.server.queries import claims


@dataclass(frozen=True)
class Take:
    """A final event's sender can run one more command now, under a lease of ``lease_seconds``."""

    worker_id: str
    lease_seconds: float
    key: str  # the claim's request id: the reported attempt's own


def take_of(command_id: UUID, attempt: int, worker_id: str, take: int, lease_seconds: float) -> Take | None:
    """The ``Take`` of an event that asked for ``take`` commands (None for 0)."""
    if take < 1:
        return None
    return Take(worker_id, lease_seconds, f"chain {command_id} {attempt}")


async def hand(
    conn: asyncpg.Connection, take: Take, notices: Sequence[Notice]
) -> tuple[dict[str, Any] | None, list[Notice]]:
    """Claim the first of the new commands for ``take``'s worker: the claim (``claims.claim``'s
    answer) and the notices left to publish. None when there is none to hand (a cancelled or
    ended execution creates none; one already taken is not retried)."""
    if not notices:
        return None, list(notices)
    first, *rest = notices
    try:
        claimed = await claims.claim(
            conn, first.command_id, take.worker_id, take.lease_seconds, take.key, start=True
        )
    except (Conflict, NotFound):
        return None, list(notices)
    return claimed, rest


async def handed_before(conn: asyncpg.Connection, take: Take) -> dict[str, Any] | None:
    """What the first answer to a repeated report handed, while its worker still holds it: the
    same lease back, extended (as a claim retried with its request id)."""
    return await claims.claimed_again(conn, take.worker_id, take.key, take.lease_seconds)
