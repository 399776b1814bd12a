"""How failures become HTTP answers: always ``{"detail": "one line"}``, never a 500 for a client.

Query code raises ``NotFound`` / ``Conflict``; the database layer raises ``DatabaseUnavailable``;
FastAPI raises ``RequestValidationError``. ``install`` maps each to its status code.
"""

from __future__ import annotations

import logging

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from noetl.protocol.types import describe_validation
from noetl.server.db import DatabaseBusy, DatabaseUnavailable
from noetl.throttle import Throttle
from noetl.tools.registry import TOOL_KINDS

log = logging.getLogger(__name__)


class NotFound(Exception):
    """The named execution, command or worker does not exist (404)."""


class Invalid(Exception):
    """The request is well formed but its content cannot be used: a broken playbook (422)."""


class Conflict(Exception):
    """The request is valid but the state does not allow it: lease lost, command finished (409)."""


def refusal_answer(exc: Exception) -> tuple[int, str]:
    """The status and one-line detail of a refused call, as its handler below answers it (for the
    items of a batch, each answered in the batch's body)."""
    if isinstance(exc, NotFound):
        return 404, str(exc)
    if isinstance(exc, Conflict):
        return 409, str(exc)
    if isinstance(exc, asyncpg.DataError):
        return 422, f"a value cannot be stored: {exc}"
    return 422, str(exc)


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return problem(404, str(exc))

    async def invalid_content(_: Request, exc: Exception) -> JSONResponse:
        return problem(422, str(exc))

    async def conflict(_: Request, exc: Exception) -> JSONResponse:
        return problem(409, str(exc))

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("%s %s: database unavailable (%s)", request.method, request.url.path, exc)
        return problem(503, "the database is unavailable; retry later", {"Retry-After": "2"})

    # A flood makes every waiting request fail the same way: one line every few seconds says so.
    busy_warning = Throttle(log)

    async def busy(_: Request, exc: Exception) -> JSONResponse:
        busy_warning(str(exc))
        detail = "the server is busy (no database connection free); retry in 1s"
        return problem(503, detail, {"Retry-After": "1"})

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem(422, describe_validation(list(exc.errors()), tags=TOOL_KINDS))

    async def unstorable(request: Request, exc: Exception) -> JSONResponse:
        # Validation should have caught it; answer as the client's mistake, and log it to fix.
        log.warning("%s %s: PostgreSQL refused a value: %s", request.method, request.url.path, exc)
        return problem(422, f"a value cannot be stored: {exc}")

    app.add_exception_handler(NotFound, not_found)
    app.add_exception_handler(Invalid, invalid_content)
    app.add_exception_handler(Conflict, conflict)
    app.add_exception_handler(DatabaseUnavailable, unavailable)
    app.add_exception_handler(DatabaseBusy, busy)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(asyncpg.DataError, unstorable)
