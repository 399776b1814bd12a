"""A proxy between a worker and the server that stops one call at a chosen phase of a command.

The fault tests choose the instant of a crash from outside the code under test: ``hold`` a call
(the claim, the ``completed`` event, ...) before it reaches the server, or after the server
answered but before the worker hears the answer; the test waits until the call is held, kills
what it wants, and then lets the call through (``release``) or cuts it (``drop``: the worker's
connection closes without an answer, which is what it sees when the server dies mid-call).

``partition`` cuts the link: while it lasts every call is dropped, as when the network between
the worker and the server is down; the worker's NATS connection is not affected.

Every call the server answered is kept in ``calls``: (path, event type or None, status).

A worker sends the claims, and the events, of its jobs in batches (``POST /api/commands/claims``
and ``/api/commands/events``). The gate sees each item of a batch as the single call it stands
for (``/api/commands/{id}/claim`` or ``/events``, with its own status from the batch's answer),
so a hold or a count names a command's call whichever way it travels; holding a batch holds
every item in it. ``requests`` keeps each request as it went: (path, number of items). A command
handed in an event's answer (chained dispatch) travels in that answer: holding or cutting the
answer holds or cuts the hand-over too (the worker's retried report gets it again).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import httpx

from tests.services import free_port

Phase = Literal["request", "answer"]
# How long a held call waits for the test's decision before it is dropped anyway.
HOLD_LIMIT = 120.0
# The batch routes: the list each one's body carries, and the single call each item stands for.
BATCHES = {"/api/commands/claims": ("claims", "claim"), "/api/commands/events": ("events", "events")}


def items_of(path: str, body: Any) -> list[tuple[str, dict[str, Any] | None]]:
    """The single calls a request stands for: (path, body) of each item of a batch, else itself."""
    batch = BATCHES.get(path)
    if batch is None or not isinstance(body, dict) or not isinstance(body.get(batch[0]), list):
        return [(path, body if isinstance(body, dict) else None)]
    key, single = batch
    return [
        (f"/api/commands/{item.get('command_id')}/{single}", item) if isinstance(item, dict) else (path, None)
        for item in body[key]
    ]


def statuses_of(answer: httpx.Response, count: int) -> list[int]:
    """Each item's status in a batch's answer (the request's own when it answered no items)."""
    try:
        answers = answer.json().get("answers") if answer.status_code == 200 else None
    except (ValueError, AttributeError):
        answers = None
    if not isinstance(answers, list) or len(answers) != count:
        return [answer.status_code] * count
    return [
        a.get("status", answer.status_code) if isinstance(a, dict) else answer.status_code for a in answers
    ]


@dataclass
class Hold:
    """One call stopped at ``phase``: the first whose path ends with ``suffix`` (and whose body's
    ``type`` is ``event_type``, when given)."""

    suffix: str
    phase: Phase
    event_type: str | None = None
    reached: threading.Event = field(default_factory=threading.Event)
    decided: threading.Event = field(default_factory=threading.Event)
    deliver: bool = True
    body: dict[str, Any] | None = None  # the held request's body

    def matches(self, path: str, body: dict[str, Any] | None) -> bool:
        if not path.endswith(self.suffix):
            return False
        return self.event_type is None or (body or {}).get("type") == self.event_type

    def wait(self, timeout: float) -> dict[str, Any]:
        """Wait until the call is held; its request body."""
        if not self.reached.wait(timeout):
            raise AssertionError(f"no {self.suffix} {self.event_type or ''} call within {timeout}s")
        return dict(self.body or {})

    def release(self) -> None:
        """Let the call go on: forward the request, or deliver the answer."""
        self.deliver = True
        self.decided.set()

    def drop(self) -> None:
        """Close the worker's connection without an answer."""
        self.deliver = False
        self.decided.set()


class Gate:
    """The proxy; use as a context manager, point the worker's NOETL_SERVER_URL at ``url``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.calls: list[tuple[str, str | None, int]] = []
        self.requests: list[tuple[str, int]] = []
        self.dropped = 0
        self._holds: list[Hold] = []
        self._partitioned = threading.Event()
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=upstream, timeout=30)
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Gate:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        with self._lock:
            for hold in self._holds:
                hold.drop()
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def hold(self, suffix: str, phase: Phase, event_type: str | None = None) -> Hold:
        """Stop the next matching call at ``phase`` until the test decides."""
        hold = Hold(suffix, phase, event_type)
        with self._lock:
            self._holds.append(hold)
        return hold

    def clear(self) -> None:
        """Forget the holds not reached yet and end any partition."""
        with self._lock:
            self._holds.clear()
        self._partitioned.clear()

    def partition(self, on: bool) -> None:
        if on:
            self._partitioned.set()
        else:
            self._partitioned.clear()

    def count(self, suffix: str, event_type: str | None = None, status: int | None = 200) -> int:
        """Calls the server answered (with ``status``; any when None) whose path ends with
        ``suffix`` (and whose event is ``event_type``, when given)."""
        with self._lock:
            return sum(
                1
                for path, kind, code in self.calls
                if path.endswith(suffix) and event_type in (None, kind) and status in (None, code)
            )

    def _take(self, items: list[tuple[str, dict[str, Any] | None]]) -> Hold | None:
        """The first hold that one of the request's items matches (the body kept is that item's)."""
        with self._lock:
            for hold in self._holds:
                for path, body in items:
                    if hold.matches(path, body):
                        self._holds.remove(hold)
                        hold.body = body
                        return hold
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _cut(self) -> None:
                with gate._lock:
                    gate.dropped += 1
                self.close_connection = True

            def _relay(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if gate._partitioned.is_set():
                    return self._cut()
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                items = items_of(self.path, body)
                hold = gate._take(items)
                if hold is not None and hold.phase == "request":
                    hold.reached.set()
                    hold.decided.wait(HOLD_LIMIT)
                    if not hold.deliver:
                        return self._cut()
                keep = ("authorization", "content-type")
                headers = {k: v for k, v in self.headers.items() if k.lower() in keep}
                try:
                    answer = gate._http.request(self.command, self.path, headers=headers, content=raw)
                except (httpx.TransportError, RuntimeError):  # RuntimeError: the gate is closing
                    return self._cut()  # the server is away: so is the answer
                with gate._lock:
                    gate.requests.append((self.path, len(items)))
                    for (path, item), status in zip(items, statuses_of(answer, len(items)), strict=True):
                        kind = (item or {}).get("type")
                        gate.calls.append((path, kind if isinstance(kind, str) else None, status))
                if hold is not None and hold.phase == "answer":
                    hold.reached.set()
                    hold.decided.wait(HOLD_LIMIT)
                    if not hold.deliver:
                        return self._cut()
                if gate._partitioned.is_set():
                    return self._cut()
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_DELETE = _relay

            def log_message(self, *_: Any) -> None:
                pass

        return Handler
