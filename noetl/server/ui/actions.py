"""What changes state: log in and out, run a playbook, cancel an execution.

Each is a form POST (``application/x-www-form-urlencoded``, read here: the body is already bounded
by NOETL_MAX_BODY_BYTES). The session gate has already checked that it came from a page of this
server; each route here checks the session's CSRF token as well, but for the login form, which has
no session yet and needs the API token itself.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import parse_qsl
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from noetl.server.problems import Invalid
from noetl.server.queries import catalog, transitions
from noetl.server.services import ServicesDep
from noetl.server.ui import reads
from noetl.server.ui.attempts import LoginAttempts
from noetl.server.ui.gate import LOGIN
from noetl.server.ui.pages import KeysDep, playbook_view
from noetl.server.ui.render import page
from noetl.server.ui.session import COOKIE, Keys, safe_next

router = APIRouter()

FORM_TYPE = "application/x-www-form-urlencoded"


class Forbidden(Exception):
    """A form without this session's CSRF token (403)."""


async def read_form(request: Request) -> dict[str, str]:
    """The posted form's fields (the last value of a repeated one); 422 for another body type."""
    raw = await request.body()
    if not raw:
        return {}
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
        raise Invalid(f"send the form as {FORM_TYPE}")
    body = raw.decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True, max_num_fields=20))


def check_csrf(request: Request, keys: Keys, form: dict[str, str]) -> None:
    if not keys.csrf_ok(request.scope.get("state", {}).get("nonce"), form.get("csrf")):
        raise Forbidden("the form's CSRF token is missing or not this session's; reload the page and retry")


def parse_payload(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The Run form's payload as a JSON object, or None and one line saying what is wrong."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"payload: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    if not isinstance(values, dict):
        return None, "payload: give a JSON object ({...})"
    return values, None


@router.get(LOGIN)
async def login_form(request: Request, keys: KeysDep, next: str = "/") -> Response:
    if not keys.required:
        return RedirectResponse(safe_next(next), status_code=303)
    return page(request, keys, "login.html", next=safe_next(next), error=None)


@router.post(LOGIN)
async def login(request: Request, keys: KeysDep, services: ServicesDep) -> Response:
    form = await read_form(request)
    target = safe_next(form.get("next"))
    attempts: LoginAttempts = request.app.state.login_attempts
    client = request.client.host if request.client else ""
    wait = attempts.retry_after(client)
    if wait is not None:
        error = f"too many wrong tokens from {client or 'this address'}: try again in {math.ceil(wait)} s"
        refused = page(request, keys, "login.html", 429, next=target, error=error)
        refused.headers["Retry-After"] = str(math.ceil(wait))
        return refused
    if not keys.token_matches(form.get("token", "").strip(), services.settings.api_token):
        attempts.failed(client)
        error = "wrong token: give the API token (NOETL_API_TOKEN, or the file $NOETL_HOME/api-token)"
        return page(request, keys, "login.html", 401, next=target, error=error)
    attempts.succeeded(client)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        keys.new_session(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/ui/logout")
async def logout(request: Request, keys: KeysDep) -> Response:
    check_csrf(request, keys, await read_form(request))
    response = RedirectResponse(LOGIN, status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.post("/ui/run")
async def run(request: Request, services: ServicesDep, keys: KeysDep) -> Response:
    """Start the playbook ``path`` at ``version`` with the JSON object ``payload``."""
    form = await read_form(request)
    check_csrf(request, keys, form)
    path, version = form.get("path") or "", form.get("version") or ""
    if not path or not version.isdigit() or not 1 <= int(version) < 2**31:
        raise Invalid("the form needs the playbook's path and a version number")
    payload = form.get("payload", "").strip() or "{}"
    async with services.db.connection() as conn:
        entry = await catalog.find(conn, path, int(version))
        values, error = parse_payload(payload)
        if values is None:
            versions = await reads.versions(conn, path)
            return playbook_view(request, keys, entry, versions, payload, error, 422)
        execution_id, notices = await transitions.start(conn, entry, values)
    services.outbox.notify(*notices)
    return RedirectResponse(f"/ui/executions/{execution_id}", status_code=303)


@router.post("/ui/executions/{execution_id}/cancel")
async def cancel(request: Request, execution_id: UUID, services: ServicesDep, keys: KeysDep) -> Response:
    check_csrf(request, keys, await read_form(request))
    async with services.db.connection() as conn:
        await transitions.cancel(conn, execution_id, "cancelled from the UI")
    return RedirectResponse(f"/ui/executions/{execution_id}", status_code=303)
