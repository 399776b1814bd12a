"""Playbook executions (NoETL's calls): execute, the event log, progress, cancel."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from noetl.server.models import (
    Cancelled,
    CancelRequest,
    ExecuteRequest,
    ExecutionProgress,
    PlaybookEvents,
    Started,
)
from noetl.server.problems import NotFound
from noetl.server.queries import catalog, executions, transitions
from noetl.server.services import ServicesDep, error_responses

router = APIRouter(tags=["playbooks"])


@router.post("/api/execute", response_model=Started, responses=error_responses(401, 404, 413, 422, 503))
async def execute(body: ExecuteRequest, services: ServicesDep) -> dict[str, Any]:
    """Start a registered playbook; the payload's keys override its workload's one by one."""
    version = body.version if isinstance(body.version, int) else None
    catalog_id = int(body.catalog_id) if body.catalog_id is not None else None
    payload = body.payload if body.payload is not None else (body.workload or {})
    async with services.db.connection() as conn:
        entry = await catalog.find(conn, body.path, version, catalog_id)
        execution_id, notices = await transitions.start(conn, entry, payload)
    services.outbox.notify(*notices)
    return {"execution_id": str(execution_id)}


@router.get(
    "/api/executions/{execution_id}/events",
    response_model=PlaybookEvents,
    responses=error_responses(404, 422, 503),
)
async def events(
    execution_id: UUID,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """The execution's events in order, ``limit`` at a time after event id ``after``."""
    async with services.db.connection("read") as conn:
        items = await executions.events_page(conn, execution_id, after, limit)
        if not items and not await executions.exists(conn, execution_id):
            raise NotFound(f"no execution {execution_id}")
    return {"items": items, "next": items[-1]["event_id"] if len(items) == limit else None}


@router.get(
    "/api/executions/{execution_id}/status",
    response_model=ExecutionProgress,
    responses=error_responses(404, 422, 503),
)
async def status(execution_id: UUID, services: ServicesDep) -> dict[str, Any]:
    async with services.db.connection() as conn:
        found = await executions.progress(conn, execution_id)
    if found is None:
        raise NotFound(f"no execution {execution_id}")
    return found


@router.post(
    "/api/executions/{execution_id}/cancel",
    response_model=Cancelled,
    responses=error_responses(401, 404, 409, 422, 503),
)
async def cancel(
    execution_id: UUID, services: ServicesDep, body: CancelRequest | None = None
) -> dict[str, Any]:
    """Drop pending steps, stop running ones (their workers see the lease revoked); 409 when it
    already ended."""
    reason = body.reason if body is not None else None
    async with services.db.connection() as conn:
        final = await transitions.cancel(conn, execution_id, reason)
    return {"execution_id": execution_id, "status": final}
