"""Worker-facing command calls: claim, heartbeat, events, release."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter

from noetl.server.models import (
    Claimed,
    ClaimRequest,
    Done,
    EventRequest,
    HeartbeatRequest,
    Lease,
    ReleaseRequest,
    Stored,
)
from noetl.server.queries import chains, claims, commands
from noetl.server.queries.commands import Recorded
from noetl.server.services import Services, ServicesDep, error_responses

router = APIRouter(prefix="/api/commands/{command_id}", tags=["commands"])

_LEASE_ERRORS = error_responses(401, 403, 404, 409, 413, 422, 503)


@router.post("/claim", response_model=Claimed, responses=_LEASE_ERRORS)
async def claim(command_id: UUID, body: ClaimRequest, services: ServicesDep) -> dict[str, Any]:
    """200 when this worker now holds the lease (as a new attempt, with its secret), or again holds
    it (the same claim retried with its ``request_id``); 409 otherwise."""
    async with services.db.connection() as conn:
        row = await claims.claim(
            conn, command_id, body.worker_id, body.lease_seconds, body.request_id, body.start
        )
    services.metrics.claimed(row)
    return row


@router.post("/heartbeat", response_model=Lease, responses=_LEASE_ERRORS)
async def heartbeat(command_id: UUID, body: HeartbeatRequest, services: ServicesDep) -> dict[str, Any]:
    """Extend the lease; 409 when it was lost."""
    async with services.db.connection() as conn:
        lease_until = await commands.heartbeat(
            conn, command_id, body.worker_id, body.attempt, body.lease, body.lease_seconds
        )
    return {"lease_until": lease_until}


@router.post("/events", response_model=Stored, responses=_LEASE_ERRORS)
async def event(command_id: UUID, body: EventRequest, services: ServicesDep) -> dict[str, Any]:
    """Store a worker event; stored is false for a repeat. 409 unless the sender holds the lease.
    With ``take``, a final event's answer may carry the next command, claimed for the sender."""
    take = chains.take_of(command_id, body.attempt, body.worker_id, body.take, body.lease_seconds)
    async with services.db.connection() as conn:
        recorded = await commands.record_event(
            conn,
            command_id,
            body.worker_id,
            body.attempt,
            body.lease,
            body.type,
            body.payload,
            body.seq,
            take,
        )
    return {"stored": recorded.stored, "next": observed(recorded, services)}


def observed(recorded: Recorded, services: Services) -> dict[str, Any] | None:
    """Publish what a recorded event created and count it in the metrics; the command handed to
    its sender, if any (its notice is not published: no other worker is to fetch it)."""
    if recorded.notices:
        services.outbox.notify(*recorded.notices)
    finished = recorded.finished
    if finished is not None:
        ran = (finished.finished_at - finished.claimed_at).total_seconds()
        services.metrics.completion_latency.labels(finished.status).observe(max(ran, 0.0))
    handed = recorded.handed
    if handed is not None:
        services.metrics.claimed(handed)
        services.metrics.handed.inc()
    return handed


@router.post("/release", response_model=Done, responses=_LEASE_ERRORS)
async def release(command_id: UUID, body: ReleaseRequest, services: ServicesDep) -> dict[str, Any]:
    """Give the lease back; the command is pending again and re-published at once."""
    async with services.db.connection() as conn:
        notice = await commands.release(conn, command_id, body.worker_id, body.attempt, body.lease)
    services.outbox.notify(notice)
    return {"status": "ok"}
