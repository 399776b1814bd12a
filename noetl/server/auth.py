"""Optional bearer token on every mutating call (NOETL_API_TOKEN).

A pure ASGI middleware rather than a route dependency, so that an unauthenticated request is
refused before its body is read or validated, and no route can forget it. The token is compared
in constant time and never logged.
"""

from __future__ import annotations

import hmac

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class TokenAuth:
    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.expected is None or scope["type"] != "http" or scope["method"] not in MUTATING:
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        refusal = JSONResponse(
            {"detail": "missing or wrong API token: send Authorization: Bearer <NOETL_API_TOKEN>"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await refusal(scope, receive, send)
