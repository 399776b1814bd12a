"""``build_ui(services)``: the UI's own ASGI app (pages, forms, live stream, assets).

It shares the API server's ``Services`` (the same pool, outbox and settings) and reads through the
same queries; it has its own gate (the session cookie) in place of the API's bearer check, and the
same request guards (body limit, no GET bodies).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from noetl.protocol.types import describe_validation
from noetl.server.db import DatabaseBusy, DatabaseUnavailable
from noetl.server.limits import BodyLimit, NoGetBody
from noetl.server.problems import Conflict, Invalid, NotFound
from noetl.server.routes import add_routes
from noetl.server.services import Services
from noetl.server.ui import actions, live, pages
from noetl.server.ui.attempts import LoginAttempts
from noetl.server.ui.gate import STATIC, SessionGate
from noetl.server.ui.render import page
from noetl.server.ui.session import Keys

STATIC_DIR = Path(__file__).with_name("static")


def build_ui(services: Services) -> FastAPI:
    keys = Keys.of(services.settings)
    ui = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    ui.state.services = services
    ui.state.keys = keys
    ui.state.login_attempts = LoginAttempts()
    ui.mount(STATIC.rstrip("/"), StaticFiles(directory=STATIC_DIR), name="static")
    add_routes(ui, pages.router, actions.router, live.router)

    # Each failure as an error page with one line (never a 500 for a client's mistake).
    answers: dict[type[Exception], tuple[int, str]] = {
        actions.Forbidden: (403, "Refused"),
        NotFound: (404, "Not found"),
        Conflict: (409, "Not possible now"),
        Invalid: (422, "Invalid"),
        RequestValidationError: (422, "Invalid request"),
        DatabaseBusy: (503, "Busy"),
        DatabaseUnavailable: (503, "Database unavailable"),
    }

    async def problem(request: Request, exc: Exception) -> Response:
        status, title = next(answer for kind, answer in answers.items() if isinstance(exc, kind))
        detail = str(exc)
        if isinstance(exc, RequestValidationError):
            detail = describe_validation(list(exc.errors()))
        return page(request, keys, "error.html", status, title=title, detail=detail)

    for kind in answers:
        ui.add_exception_handler(kind, problem)
    ui.add_middleware(BodyLimit, max_bytes=services.settings.max_body_bytes)
    ui.add_middleware(NoGetBody)
    ui.add_middleware(SessionGate, keys=keys)
    return ui
