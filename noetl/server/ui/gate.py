"""Where a request goes: the UI's paths to the UI's own app, behind its session; the rest to the API.

``UiGate`` sits outside the API's middleware and hands ``/`` and ``/ui/...`` to the UI app, so the
API's routes, bearer-token check and answers stay exactly as they are. ``SessionGate`` is the UI
app's outermost layer: every page needs the session cookie (a GET without it is sent to the login
form, anything else gets 401), and every state-changing request must come from a page of this
server (403 otherwise). Only the login form and the static assets are open; a route added later is
closed until ``OPEN`` says otherwise.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from noetl.server.ui.session import COOKIE, SAFE_METHODS, Keys, same_origin

PREFIX = "/ui"
LOGIN = f"{PREFIX}/login"
STATIC = f"{PREFIX}/static/"
# Paths that need no session: the login form (and its post) and the page assets.
OPEN = (LOGIN,)


def is_ui_path(path: str) -> bool:
    return path == "/" or path == PREFIX or path.startswith(PREFIX + "/")


def is_open(path: str) -> bool:
    return path in OPEN or path.startswith(STATIC)


class UiGate:
    """Sends the UI's paths to ``ui`` and every other one to ``api``, untouched."""

    def __init__(self, api: ASGIApp, ui: ASGIApp) -> None:
        self.api = api
        self.ui = ui

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_ui_path(scope["path"]):
            await self.ui(scope, receive, send)
        else:
            await self.api(scope, receive, send)


class SessionGate:
    def __init__(self, app: ASGIApp, keys: Keys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        method, path = scope["method"], scope["path"]
        if method not in SAFE_METHODS and not same_origin(
            request.headers.get("host"), request.headers.get("origin"), request.headers.get("referer")
        ):
            # Connection: close, as the body is never read (the client must not reuse the connection).
            refusal = PlainTextResponse(
                "refused: this request did not come from a page of this server",
                403,
                headers={"Connection": "close"},
            )
            await refusal(scope, receive, send)
            return
        nonce = self.keys.nonce(request.cookies.get(COOKIE))
        # The routes read the session's nonce here (for the CSRF token of their forms).
        scope.setdefault("state", {})["nonce"] = nonce
        if nonce is not None or is_open(path):
            await self.app(scope, receive, send)
            return
        response: Response
        if method in SAFE_METHODS and "text/event-stream" not in request.headers.get("accept", ""):
            target = path + (f"?{scope['query_string'].decode()}" if scope["query_string"] else "")
            response = RedirectResponse(f"{LOGIN}?next={quote(target, safe='')}", status_code=303)
        else:
            detail = "log in first: the UI needs the API token (NOETL_API_TOKEN)"
            response = PlainTextResponse(detail, 401, headers={"Connection": "close"})
        await response(scope, receive, send)
