"""A request body limit (NOETL_MAX_BODY_BYTES): larger bodies get 413 before any parsing.

The body is read here, up to the limit, and replayed to the app; API bodies are small JSON
documents, so buffering them costs nothing and makes the limit exact whatever the client claims
in Content-Length (or when it sends none).
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body larger than {self.max_bytes} bytes (NOETL_MAX_BODY_BYTES)"
        # Connection: close, so the client stops sending the rest of a body nobody will read.
        refusal = JSONResponse({"detail": detail}, status_code=413, headers={"Connection": "close"})
        await refusal(scope, receive, send)


class NoGetBody:
    """GET and HEAD carry no body here: one with a body (a smuggling or cache-poisoning probe, or a
    client bug) gets 400 before anything reads it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            headers = dict(scope["headers"])
            length = headers.get(b"content-length", b"0").strip()
            if b"transfer-encoding" in headers or length not in (b"", b"0"):
                detail = f"{scope['method']} takes no request body; send the parameters in the query string"
                await JSONResponse({"detail": detail}, status_code=400, headers={"Connection": "close"})(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)
