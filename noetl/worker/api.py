"""The worker's client for the NoETL API (docs/api.md): claims, leases, events and the registry.

Connection errors, timeouts and 5xx answers (503 included) are retried with capped exponential
backoff until the call's deadline (``noetl.client.session``): the server being briefly away is
normal (restarts, deploys). 409 and 404 are answers, not errors. 401/403 end the worker: a wrong
token cannot get better.

Claims and events go through the batch routes (``POST /api/commands/claims`` and ``/events``):
what the worker's jobs ask while a request of that kind is in flight goes together in the next
one (``noetl.worker.batch``), and each item is answered as its single call would be. A final
event may ask for the next command in its answer (``report``'s ``take_lease``: chained dispatch,
docs/api.md).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from noetl.client.session import (
    NOT_FOUND_OR_CONFLICT,
    Answer,
    ApiRejected,
    AsyncSession,
    AuthRejected,
    Endpoint,
    ServerUnreachable,
)
from noetl.protocol.words import BATCH_LIMIT, TAKE_LIMIT
from noetl.worker.batch import Coalescer

log = logging.getLogger("noetl.worker")

__all__ = ["ApiRejected", "AuthRejected", "Claim", "Reported", "ServerApi", "ServerUnreachable"]


@dataclass(frozen=True)
class Claim:
    """What a successful claim returns: the command to run under this attempt's lease."""

    command_id: str
    execution_id: str
    attempt: int
    lease: str  # the attempt's lease secret: heartbeats, events and the release present it
    tool: Any
    timeout: float
    lease_until: str | None
    started: bool = False  # the server recorded the attempt's `started` event with the claim


@dataclass(frozen=True)
class Reported:
    """What reporting an event gave: ``stored`` (or stored before), False when the lease is gone;
    ``next``: the command the server claimed for this worker in the answer (chained dispatch)."""

    stored: bool
    next: Claim | None = None


def _claim_of(command_id: str, answer: Answer | Exception) -> Claim | Exception | None:
    """The claim in a claim's answer; ``None`` for 404 and 409."""
    if isinstance(answer, Exception):
        return answer
    if answer.status in NOT_FOUND_OR_CONFLICT:
        return None
    claimed = answer.body.get("claim") if isinstance(answer.body, Mapping) else None
    return _claim_in(answer.status, command_id, claimed)


def _claim_in(status: int, command_id: str, claimed: Any) -> Claim | ApiRejected:
    """The ``Claim`` a claim answer's body (or an event answer's ``next``) describes."""
    if (
        not isinstance(claimed, Mapping)
        or not isinstance(claimed.get("attempt"), int)
        or not isinstance(claimed.get("lease"), str)
    ):
        return ApiRejected(status, "the claim answer carries no attempt or lease secret")
    return Claim(
        command_id=str(claimed.get("command_id", command_id)),
        execution_id=str(claimed.get("execution_id", "")),
        attempt=int(claimed["attempt"]),
        lease=claimed["lease"],
        tool=claimed.get("tool"),
        timeout=float(claimed.get("timeout") or 300),
        lease_until=claimed.get("lease_until"),
        started=claimed.get("started") is True,
    )


def _reported(answer: Answer | Exception) -> Reported | Exception:
    if isinstance(answer, Exception):
        return answer
    if answer.status >= 300:
        return Reported(stored=False)
    handed = answer.body.get("next") if isinstance(answer.body, Mapping) else None
    if handed is None:
        return Reported(stored=True)
    claim = _claim_in(answer.status, "", handed)
    if isinstance(claim, Exception):
        # The event is stored; a handed command this worker cannot read is left to its lease.
        log.warning("an event's answer carries a next command without a lease: %s", claim.detail)
        return Reported(stored=True)
    return Reported(stored=True, next=claim)


class ServerApi:
    """Async client for the API calls a worker makes. ``until`` arguments are ``time.monotonic()``
    deadlines for retrying; ``None`` retries until the caller is cancelled."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        endpoint = Endpoint(base_url, token, "worker's token", "NOETL_WORKER_TOKEN")
        self._session = AsyncSession(endpoint, log, sleep=sleep, clock=clock)
        # What the jobs claim, and report, at the same time goes in one request of each kind.
        self._claims: Coalescer[dict[str, Any], Claim | None] = Coalescer(
            self._claim_batch, limit=BATCH_LIMIT
        )
        self._events: Coalescer[dict[str, Any], Reported] = Coalescer(self._event_batch, limit=BATCH_LIMIT)

    @property
    def base_url(self) -> str:
        return self._session.endpoint.base_url

    async def close(self) -> None:
        await self._session.close()

    async def _call(self, method: str, path: str, body: Any = None, *, until: float | None) -> Answer:
        """2xx, 404 and 409 answers; raises ``AuthRejected`` (401/403), ``ApiRejected`` (other 4xx)
        or ``ServerUnreachable`` (still no answer at ``until``)."""
        return await self._session.call(method, path, body, until=until, answers=NOT_FOUND_OR_CONFLICT)

    # --- commands --------------------------------------------------------------------------------

    async def claim(
        self, command_id: str, worker_id: str, lease: float, *, until: float | None, start: bool = True
    ) -> Claim | None:
        """The claim, or ``None`` when another worker holds the command, it is finished or unknown.

        The call carries a random request id: when an answer is lost and the call retried, the
        server recognises it and hands the same lease back instead of refusing it. With ``start``
        the server records the attempt's ``started`` event with the claim (``Claim.started``).
        Claims that the worker's jobs make together go in one request (``noetl.worker.batch``).
        """
        body = {
            "command_id": command_id,
            "worker_id": worker_id,
            "lease_seconds": lease,
            "request_id": secrets.token_hex(16),
            "start": start,
        }
        return await self._claims.call(body, until)

    async def _claim_batch(
        self, bodies: list[dict[str, Any]], until: float | None
    ) -> list[Claim | Exception | None]:
        answers = await self._batch("claims", bodies, until)
        return [_claim_of(body["command_id"], answer) for body, answer in zip(bodies, answers, strict=True)]

    async def heartbeat(self, claim: Claim, worker_id: str, lease: float, *, until: float | None) -> bool:
        """Extend the lease; ``False`` when it was lost."""
        path = f"/api/commands/{quote(claim.command_id, safe='')}/heartbeat"
        body = {"worker_id": worker_id, "attempt": claim.attempt, "lease": claim.lease}
        body["lease_seconds"] = lease
        answer = await self._call("POST", path, body, until=until)
        return answer.status < 300

    async def event(
        self,
        claim: Claim,
        worker_id: str,
        kind: str,
        payload: Mapping[str, Any],
        seq: int,
        *,
        until: float | None,
    ) -> bool:
        """Report an event; ``True`` once stored (or already stored), ``False`` when the lease is
        gone. Events that the worker's jobs report together go in one request."""
        return (await self.report(claim, worker_id, kind, payload, seq, until=until)).stored

    async def report(
        self,
        claim: Claim,
        worker_id: str,
        kind: str,
        payload: Mapping[str, Any],
        seq: int,
        *,
        until: float | None,
        take_lease: float | None = None,
    ) -> Reported:
        """``event``, and with ``take_lease`` (a final event whose slot is free: the worker can
        run one more command now) the next command the server claimed for it under a lease of
        that many seconds, if any (``Reported.next``)."""
        body: dict[str, Any] = {
            "command_id": claim.command_id,
            "worker_id": worker_id,
            "attempt": claim.attempt,
            "lease": claim.lease,
            "type": kind,
            "payload": dict(payload),
            "seq": seq,
        }
        if take_lease is not None:
            body["take"] = TAKE_LIMIT
            body["lease_seconds"] = take_lease
        return await self._events.call(body, until)

    async def _event_batch(
        self, bodies: list[dict[str, Any]], until: float | None
    ) -> list[Reported | Exception]:
        answers = await self._batch("events", bodies, until)
        return [_reported(answer) for answer in answers]

    async def _batch(
        self, kind: str, bodies: list[dict[str, Any]], until: float | None
    ) -> list[Answer | Exception]:
        """Each body's answer from ``POST /api/commands/{kind}`` (``claims`` or ``events``), as
        its single call would give it: an ``Answer`` (2xx, 404, 409) or an ``ApiRejected``."""
        path = f"/api/commands/{kind}"
        try:
            answer = await self._call("POST", path, {kind: bodies}, until=until)
        except ApiRejected as exc:
            if len(bodies) == 1:
                return [exc]
            # Refused as a whole (413: too large together): each alone gets its own answer.
            return [(await self._batch(kind, [body], until))[0] for body in bodies]
        items = answer.body.get("answers") if isinstance(answer.body, Mapping) else None
        if answer.status != 200 or not isinstance(items, list) or len(items) != len(bodies):
            raise ApiRejected(answer.status, f"the answer of {path} does not answer each of its items")
        answers: list[Answer | Exception] = []
        for item in items:
            status = item.get("status") if isinstance(item, Mapping) else None
            if not isinstance(status, int):
                answers.append(ApiRejected(answer.status, f"an item of {path} answered without a status"))
            elif status < 300 or status in NOT_FOUND_OR_CONFLICT:
                answers.append(Answer(status, item))
            else:
                answers.append(ApiRejected(status, str(item.get("detail") or status)))
        return answers

    async def release(self, claim: Claim, worker_id: str, *, until: float | None) -> bool:
        """Give the lease back so another worker can take the command at once."""
        path = f"/api/commands/{quote(claim.command_id, safe='')}/release"
        body = {"worker_id": worker_id, "attempt": claim.attempt, "lease": claim.lease}
        answer = await self._call("POST", path, body, until=until)
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
