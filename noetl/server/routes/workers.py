"""The worker registry: register, heartbeat, deregister, list."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from noetl.server.models import WorkerHeartbeat, WorkerList, WorkerRegistration, WorkerView
from noetl.server.queries import workers
from noetl.server.services import ServicesDep, error_responses

router = APIRouter(prefix="/api/workers", tags=["workers"])

WorkerIdPath = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]


@router.post("", response_model=WorkerView, responses=error_responses(401, 413, 422, 503))
async def register(body: WorkerRegistration, services: ServicesDep) -> dict[str, Any]:
    """Register (or register again) a worker; idempotent."""
    async with services.db.connection() as conn:
        return await workers.register(conn, body.worker_id, body.name, body.host, body.pid, body.concurrency)


@router.post(
    "/{worker_id}/heartbeat", response_model=WorkerView, responses=error_responses(401, 404, 413, 422, 503)
)
async def heartbeat(worker_id: WorkerIdPath, body: WorkerHeartbeat, services: ServicesDep) -> dict[str, Any]:
    """Mark the worker alive with the commands it runs; 404 when unknown (register again)."""
    async with services.db.connection() as conn:
        return await workers.heartbeat(conn, worker_id, body.running)


@router.delete("/{worker_id}", response_model=WorkerView, responses=error_responses(401, 404, 422, 503))
async def deregister(worker_id: WorkerIdPath, services: ServicesDep) -> dict[str, Any]:
    """Mark the worker offline."""
    async with services.db.connection() as conn:
        return await workers.deregister(conn, worker_id)


@router.get("", response_model=WorkerList, responses=error_responses(422, 503))
async def list_(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    after: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Workers by id, ``limit`` at a time; page on with ``after=<next>``."""
    async with services.db.connection("read") as conn:
        items = await workers.list_workers(conn, limit, after)
    return {"items": items, "next": items[-1]["worker_id"] if len(items) == limit else None}
