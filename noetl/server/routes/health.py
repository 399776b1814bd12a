"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from noetl.server.models import Health, Readiness
from noetl.server.services import ServicesDep

router = APIRouter(tags=["probes"])


@router.get("/api/health", response_model=Health)
async def health() -> dict[str, str]:
    """200 while the process answers."""
    return {"status": "ok"}


@router.get("/api/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(services: ServicesDep) -> JSONResponse:
    """200 when PostgreSQL and NATS are both reachable, else 503 with the same shape."""
    postgres = await services.db.ping()
    nats = services.publisher.connected
    ok = postgres and nats
    body = {"status": "ready" if ok else "not ready", "postgres": postgres, "nats": nats}
    return JSONResponse(body, status_code=200 if ok else 503)
