"""``create_app(settings)``: the FastAPI application and its background tasks.

The lifespan starts five tasks and waits for the database opener's first attempt only (at most
``OPEN_WAIT``), never for PostgreSQL or NATS to come up: the server answers probes (readiness 503)
while either is down, and the tasks connect as soon as they can.
  - the database opener (pool + migrations), retrying until it succeeds;
  - the NATS connection (unlimited reconnects) and the stream;
  - the outbox (publish after commit, sweep for unpublished commands);
  - the reaper (expired leases back to pending, or dead after max_attempts);
  - retention (finished executions and silent workers older than NOETL_RETENTION_DAYS deleted).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from noetl import __version__
from noetl.server import problems, ui
from noetl.server.auth import TokenAuth
from noetl.server.db import UNAVAILABLE_ERRORS
from noetl.server.limits import BodyLimit, NoGetBody
from noetl.server.models import Problem
from noetl.server.reaper import run_reaper
from noetl.server.retention import run_retention
from noetl.server.routes import (
    add_routes,
    catalog,
    command_batches,
    commands,
    executions,
    health,
    metrics,
    playbooks,
    workers,
)
from noetl.server.services import Services
from noetl.settings import Settings

log = logging.getLogger(__name__)

ROUTES = (health, metrics, catalog, playbooks, executions, commands, command_batches, workers)

# Seconds the lifespan's cleanup may take after uvicorn's graceful shutdown (see __main__).
CLEANUP_BUDGET = 2.0
# The server answers requests once its first attempt to open the database has succeeded or failed,
# waiting at most this many seconds (a connection that hangs). Its socket is bound (and queues
# connections) before its imports, so what comes at start, the workers registering, is answered
# once the pool is open, instead of with a 503 that they retry after a backoff.
OPEN_WAIT = 2.0


def create_app(settings: Settings) -> FastAPI:
    services = Services.build(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tried = asyncio.Event()

        async def open_database() -> None:
            try:
                await services.db.open()
            except UNAVAILABLE_ERRORS:
                pass  # keep_open tries again at once, then with a backoff, and says why
            finally:
                tried.set()
            await services.db.keep_open()
            services.outbox.sweep_soon()

        tasks = [
            asyncio.create_task(open_database(), name="noetl-db"),
            asyncio.create_task(services.publisher.keep_connected(), name="noetl-nats"),
            asyncio.create_task(services.outbox.run(), name="noetl-outbox"),
            asyncio.create_task(
                run_reaper(services.db, services.outbox, services.metrics, settings.reaper_interval),
                name="noetl-reaper",
            ),
        ]
        if settings.retention_days:
            retention = run_retention(services.db, settings.retention_days)
            tasks.append(asyncio.create_task(retention, name="noetl-retention"))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tried.wait(), OPEN_WAIT)
            yield
        finally:
            await _shutdown(services, tasks)

    app = FastAPI(
        title="NoETL",
        version=__version__,
        description="Playbooks, executions, commands and workers; see docs/api.md.",
        lifespan=lifespan,
    )
    app.state.services = services
    add_routes(app, *(module.router for module in ROUTES))
    app.openapi = functools.partial(_openapi, app)  # type: ignore[method-assign]
    problems.install(app)
    # Starlette runs the last added middleware first: the token check, no body on GET, the body limit.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(NoGetBody)
    app.add_middleware(TokenAuth, settings=settings)
    if settings.enable_ui:
        # Outermost: `/` and `/ui/...` go to the UI's own app and session; the API is untouched.
        ui.install(app, services)
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the ``Problem`` schema that every error answer refers to.

    The routes name it by reference (``services.error_responses``) instead of as a model, which
    FastAPI would turn into one validator per route and status code, built at import (~30 ms).
    """
    if app.openapi_schema is None:
        document = FastAPI.openapi(app)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault(Problem.__name__, Problem.model_json_schema())
    return app.openapi_schema or {}


async def _shutdown(services: Services, tasks: list[asyncio.Task[None]]) -> None:
    """Stop the background tasks, publish what is queued if NATS is up, close the connections."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # Best effort only: anything not published stays in the outbox for the next start.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(services.outbox.flush(), CLEANUP_BUDGET / 4)
    await services.publisher.close(CLEANUP_BUDGET / 4)
    await services.db.close(CLEANUP_BUDGET / 2)
    log.info("server stopped")
