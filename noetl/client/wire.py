"""A lean asynchronous HTTP/1.1 client: the worker's calls to the API server.

Why not httpx: measured on this machine against the same uvicorn endpoint, one JSON POST cost the
client 1.3 ms of CPU with ``httpx.AsyncClient``, 0.3 ms with aiohttp and 0.12-0.16 ms over plain
asyncio streams; a worker makes two or more calls per command, so httpx was most of a worker's
CPU per command. This client speaks what the worker needs and nothing more: JSON requests with
a ``Content-Length``, answers with a ``Content-Length``, chunked or read to the end, keep-alive
connections reused one request at a time, ``https`` through the standard ``ssl`` module.

Every failure to get an answer (refused, reset, timed out, a malformed answer) raises
``NoAnswer``; the caller (``noetl.client.session.AsyncSession``) decides what to retry. A request
sent on a kept-alive connection the server had closed meanwhile (uvicorn closes idle ones after
5 s) is sent once more on a new connection, as browsers and urllib3 do, when not one byte of an
answer came back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

MAX_IDLE = 16  # kept-alive connections kept per client; more are closed once their answer is read
MAX_HEAD = 64 * 1024  # bytes of status line and headers


class NoAnswer(Exception):
    """No (complete) answer came: the connection failed, was cut or timed out."""


@dataclass(frozen=True)
class Response:
    """An answer, with the attribute names of ``httpx.Response`` that ``Endpoint.read`` uses."""

    status_code: int
    reason_phrase: str
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    content: bytes = b""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _Stale(Exception):
    """A kept-alive connection answered nothing at all: the server had closed it."""


class WireClient:
    def __init__(self, base_url: str, headers: Mapping[str, str] | None = None) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = url.hostname
        self.tls = url.scheme == "https"
        self.port = url.port or (443 if self.tls else 80)
        self.prefix = url.path.rstrip("/")
        default_port = self.port == (443 if self.tls else 80)
        host_header = self.host if ":" not in self.host else f"[{self.host}]"
        self._head = {
            "Host": host_header if default_port else f"{host_header}:{self.port}",
            "Accept": "application/json",
            "User-Agent": "noetl",
            **(headers or {}),
        }
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._closed = False

    async def request(self, method: str, path: str, *, json: Any = None, timeout: float) -> Response:
        body = b"" if json is None else _dumps(json)
        head = self._request_head(method, path, body)
        try:
            async with asyncio.timeout(timeout):
                while self._idle:
                    conn = self._idle.pop()
                    try:
                        return await self._exchange(conn, head, body, method, reused=True)
                    except _Stale:
                        continue  # the server closed it while idle: the next one, or a new one
                return await self._exchange(await self._connect(), head, body, method, reused=False)
        except TimeoutError:
            raise NoAnswer(f"no answer within {timeout:.3g}s") from None
        except _Stale as exc:  # cannot happen for a new connection; said for completeness
            raise NoAnswer("the connection was closed") from exc

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()

    def _request_head(self, method: str, path: str, body: bytes) -> bytes:
        lines = [f"{method} {self.prefix}{path} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in self._head.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Type: application/json")
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        ssl_context = None
        if self.tls:
            import ssl  # only a worker that talks https pays for it

            ssl_context = ssl.create_default_context()
        try:
            return await asyncio.open_connection(self.host, self.port, ssl=ssl_context, limit=MAX_HEAD)
        except OSError as exc:
            raise NoAnswer(_reason(exc)) from None

    async def _exchange(
        self,
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        head: bytes,
        body: bytes,
        method: str,
        *,
        reused: bool,
    ) -> Response:
        reader, writer = conn
        keep = False
        try:
            writer.write(head + body)
            await writer.drain()
            try:
                status_line = await reader.readuntil(b"\r\n")
            except asyncio.IncompleteReadError as exc:
                if reused and not exc.partial:
                    raise _Stale from None
                raise
            response, keep = await _read_answer(reader, status_line, method)
            return response
        except ConnectionError as exc:
            if reused:
                raise _Stale from None
            raise NoAnswer(_reason(exc)) from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise NoAnswer(_reason(exc)) from None
        finally:
            if keep and not self._closed and len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
            else:
                writer.close()


async def _read_answer(
    reader: asyncio.StreamReader, status_line: bytes, method: str
) -> tuple[Response, bool]:
    """The answer after its status line, and whether the connection may carry another request."""
    parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer: {status_line[:60]!r}")
    status, reason = int(parts[1]), parts[2] if len(parts) > 2 else ""
    headers: dict[str, str] = {}
    for line in (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    keep = headers.get("connection", "").lower() != "close" and parts[0] == "HTTP/1.1"
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        content = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        content = await _read_chunked(reader)
    elif "content-length" in headers:
        content = await reader.readexactly(int(headers["content-length"]))
    else:  # delimited by the end of the connection
        content, keep = await reader.read(), False
    return Response(status, reason, headers, content), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, then the blank line
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)  # the chunk's CRLF


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "the server closed the connection before its answer was complete"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
