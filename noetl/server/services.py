"""What every route needs, built once per app: settings, database, publisher, outbox, submitter,
metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from noetl.server.db import Database
from noetl.server.metrics import ServerMetrics
from noetl.server.models import Problem
from noetl.server.outbox import Outbox
from noetl.server.publisher import Publisher
from noetl.server.submitter import Submitter
from noetl.settings import Settings


@dataclass
class Services:
    settings: Settings
    db: Database
    publisher: Publisher
    outbox: Outbox
    submitter: Submitter
    metrics: ServerMetrics

    @classmethod
    def build(cls, settings: Settings) -> Services:
        db = Database(settings)
        metrics = ServerMetrics()
        publisher = Publisher(settings)
        outbox = Outbox(db, publisher, metrics, settings.reaper_interval)
        publisher.on_connected = outbox.sweep_soon
        return cls(settings, db, publisher, outbox, Submitter(db, outbox, metrics), metrics)


async def _services(request: Request) -> Services:
    # async on purpose: FastAPI runs a plain-def dependency in its threadpool (~0.1 ms a request).
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]

_REASONS = {
    401: "The call lacks `Authorization: Bearer <token>` or the token is unknown",
    403: "The token is of the other kind (worker routes take NOETL_WORKER_TOKEN, the rest NOETL_API_TOKEN)",
    404: "Not found",
    409: "The state does not allow it (lease lost, command finished)",
    413: "Body larger than NOETL_MAX_BODY_BYTES",
    422: "Invalid request",
    503: "PostgreSQL is unavailable; retry later",
}


# By reference: ``app._openapi`` adds the schema once (a model here would cost a validator per route
# and status code at import, for the document only).
_PROBLEM = {"application/json": {"schema": {"$ref": f"#/components/schemas/{Problem.__name__}"}}}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give (all ``{"detail": "..."}``)."""
    return {code: {"description": _REASONS[code], "content": _PROBLEM} for code in codes}
