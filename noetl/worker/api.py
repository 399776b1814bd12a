"""The worker's client for the NoETL API (docs/api.md): claims, leases, events and the registry.

Connection errors, timeouts and 5xx answers (503 included) are retried with capped exponential
backoff until the call's deadline: the server being briefly away is normal (restarts, deploys).
409 and 404 are answers, not errors. 401/403 end the worker: a wrong token cannot get better.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from noetl.errors import ConfigError

log = logging.getLogger("noetl.worker")

# Backoff between retries: 0.1 s doubling up to 2 s; a line about it at most every 5 s.
_FIRST_DELAY = 0.1
_MAX_DELAY = 2.0
_LOG_EVERY = 5.0
_REQUEST_TIMEOUT = 10.0


class ServerUnreachable(Exception):
    """The server did not answer usefully before the call's deadline."""


class ApiRejected(Exception):
    """The server refused the request with a 4xx other than 404/409 (the detail says why)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class AuthRejected(ConfigError):
    """401/403: the worker's NOETL_API_TOKEN does not match the server's."""


@dataclass(frozen=True)
class Claim:
    """What a successful claim returns: the command to run under this attempt's lease."""

    command_id: str
    execution_id: str
    attempt: int
    tool: Any
    timeout: float
    lease_until: str | None


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, Mapping) and "detail" in body:
        return str(body["detail"])[:200]
    return str(body)[:200]


class ServerApi:
    """Async client for the API calls a worker makes. ``until`` arguments are ``time.monotonic()``
    deadlines for retrying; ``None`` retries until the caller is cancelled."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=_REQUEST_TIMEOUT, transport=transport
        )
        self._sleep = sleep
        self._clock = clock
        self._last_complaint = -_LOG_EVERY

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: Any = None, *, until: float | None) -> Answer:
        """One call, retried on connection errors and 5xx until ``until``. Returns 2xx, 404 and 409
        answers; raises ``AuthRejected`` (401/403), ``ApiRejected`` (other 4xx) or ``ServerUnreachable``."""
        delay = _FIRST_DELAY
        while True:
            why: str
            timeout = _REQUEST_TIMEOUT
            if until is not None:  # one slow request must not overrun the deadline either
                timeout = max(0.05, min(timeout, until - self._clock()))
            try:
                response = await self._http.request(method, path, json=body, timeout=timeout)
            except httpx.TransportError as exc:
                why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                status = response.status_code
                if status < 300 or status in (404, 409):
                    try:
                        return Answer(status, response.json() if response.content else None)
                    except ValueError:
                        return Answer(status, None)
                if status in (401, 403):
                    raise AuthRejected(
                        f"the server refused the worker's token ({status}): "
                        "set NOETL_API_TOKEN to the token the server was started with"
                    )
                if status < 500:
                    raise ApiRejected(status, _detail(response))
                why = f"{status} {_detail(response)}"
            now = self._clock()
            if until is not None and now + delay > until:
                raise ServerUnreachable(f"{method} {path}: {why}")
            if now - self._last_complaint >= _LOG_EVERY:
                self._last_complaint = now
                log.warning("server %s not answering (%s); retrying", self._http.base_url, why)
            await self._sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)

    # --- commands --------------------------------------------------------------------------------

    async def claim(
        self, command_id: str, worker_id: str, lease: float, *, until: float | None
    ) -> Claim | None:
        """The claim, or ``None`` when another worker holds the command, it is finished or unknown."""
        path = f"/api/commands/{quote(command_id, safe='')}/claim"
        answer = await self._call("POST", path, {"worker_id": worker_id, "lease_seconds": lease}, until=until)
        if answer.status in (404, 409):
            return None
        body = answer.body
        if not isinstance(body, Mapping) or not isinstance(body.get("attempt"), int):
            raise ApiRejected(answer.status, "the claim answer carries no attempt")
        return Claim(
            command_id=str(body.get("command_id", command_id)),
            execution_id=str(body.get("execution_id", "")),
            attempt=int(body["attempt"]),
            tool=body.get("tool"),
            timeout=float(body.get("timeout") or 300),
            lease_until=body.get("lease_until"),
        )

    async def heartbeat(
        self, command_id: str, worker_id: str, attempt: int, lease: float, *, until: float | None
    ) -> bool:
        """Extend the lease; ``False`` when it was lost."""
        path = f"/api/commands/{quote(command_id, safe='')}/heartbeat"
        body = {"worker_id": worker_id, "attempt": attempt, "lease_seconds": lease}
        answer = await self._call("POST", path, body, until=until)
        return answer.status < 300

    async def event(
        self,
        command_id: str,
        worker_id: str,
        attempt: int,
        kind: str,
        payload: Mapping[str, Any],
        seq: int,
        *,
        until: float | None,
    ) -> bool:
        """Report an event; ``True`` once stored (or already stored), ``False`` when the lease is gone."""
        path = f"/api/commands/{quote(command_id, safe='')}/events"
        body = {
            "worker_id": worker_id,
            "attempt": attempt,
            "type": kind,
            "payload": dict(payload),
            "seq": seq,
        }
        answer = await self._call("POST", path, body, until=until)
        return answer.status < 300

    async def release(self, command_id: str, worker_id: str, attempt: int, *, until: float | None) -> bool:
        """Give the lease back so another worker can take the command at once."""
        path = f"/api/commands/{quote(command_id, safe='')}/release"
        answer = await self._call("POST", path, {"worker_id": worker_id, "attempt": attempt}, until=until)
        return answer.status < 300

    # --- registry --------------------------------------------------------------------------------

    async def register(self, info: Mapping[str, Any], *, until: float | None) -> None:
        await self._call("POST", "/api/workers", dict(info), until=until)

    async def worker_heartbeat(self, worker_id: str, running: list[str], *, until: float | None) -> bool:
        """``False`` when the server does not know this worker (it must register again)."""
        path = f"/api/workers/{quote(worker_id, safe='')}/heartbeat"
        answer = await self._call("POST", path, {"running": running}, until=until)
        return answer.status < 300

    async def deregister(self, worker_id: str, *, until: float | None) -> None:
        await self._call("DELETE", f"/api/workers/{quote(worker_id, safe='')}", until=until)
