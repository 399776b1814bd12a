"""One notice, from claim to ack.

Claim the command (409: someone else has it or it is finished: ack and skip), which records
``started`` too (a server that did not gets a ``started`` event of its own);
run the tool while heartbeating the lease; report ``completed`` or ``failed``; ack. When the worker
drains past its deadline the job is released instead: the tool's processes are killed and the
lease handed back, so another worker takes the command at once. When the lease is lost (the server
gave the command to another attempt, or its execution was cancelled) the tool's process group is
killed and nothing more is reported.

Chained dispatch: while the worker is not stopping, the final report asks for one more command
(the slot this one frees); the answer may hand one, already claimed with its ``started`` event,
which the job runs next in the same slot as it runs a claimed one. It has no notice to ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from noetl.protocol.nats import NATS_ERRORS, parse_notice
from noetl.tools.base import Outcome, ToolContext
from noetl.tools.deferred import run_tool
from noetl.worker.api import ApiRejected, Claim, Reported, ServerApi, ServerUnreachable
from noetl.worker.consumer import ACK_WAIT

log = logging.getLogger("noetl.worker")

# How long a claim is retried while the server is away before the notice goes back to NATS.
CLAIM_PATIENCE = ACK_WAIT / 2
# A cancelled execution revokes its commands' leases; a running tool learns it at its next
# heartbeat, so heartbeats come at least this often (seconds): a cancel stops it within ~1 s.
CANCEL_NOTICE = 1.0
# Errors in log lines are cut to this many characters: a preview, not a payload.
PREVIEW = 160


class Delivery(Protocol):
    """What a job needs of a JetStream message (nats-py's ``Msg`` is one)."""

    data: bytes

    async def ack(self) -> None: ...
    async def nak(self, delay: float | None = None) -> None: ...
    async def in_progress(self) -> None: ...


class _Handed:
    """The delivery of a command handed in an answer: it has no notice to settle."""

    data = b""

    async def ack(self) -> None:
        pass

    async def nak(self, delay: float | None = None) -> None:
        pass

    async def in_progress(self) -> None:
        pass


HANDED: Delivery = _Handed()


@dataclass(frozen=True)
class JobSettings:
    worker_id: str
    lease: float
    base_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def heartbeat_interval(self) -> float:
        """Well inside the lease and the notice's ack wait, and often enough to see a cancel."""
        return min(self.lease / 3, ACK_WAIT / 3, CANCEL_NOTICE)

    @property
    def report_patience(self) -> float:
        """How long a final event is retried while the server is away."""
        return max(60.0, 2 * self.lease)


def _preview(text: str | None) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= PREVIEW else text[: PREVIEW - 3] + "..."


def _kind(tool: Any) -> str:
    kind = tool.get("kind") if isinstance(tool, Mapping) else None
    return kind if isinstance(kind, str) else "?"


Runner = Callable[[Any, ToolContext], Awaitable[Outcome]]


class Job:
    """Runs one notice to its end. ``phase`` is new, claiming, running, reporting or done."""

    def __init__(
        self,
        msg: Delivery,
        api: ServerApi,
        settings: JobSettings,
        *,
        runner: Runner = run_tool,
        clock: Callable[[], float] = time.monotonic,
        wants_more: Callable[[], bool] = lambda: False,
    ) -> None:
        self.msg = msg
        # Whether the worker can run one more command once this one ends (chained dispatch): its
        # final report then asks the server for the next command in the answer.
        self.wants_more = wants_more
        self.api = api
        self.settings = settings
        self.runner = runner
        self.clock = clock
        self.command_id: str | None = None
        self.claim: Claim | None = None
        self.phase = "new"
        self.outcome: str | None = None  # how it ended: completed, failed, skipped, released, lost, ...
        self._release = asyncio.Event()
        self._release_until: float | None = None
        self._lost = asyncio.Event()

    @property
    def holds_lease(self) -> bool:
        return self.claim is not None and self.phase in ("running", "reporting")

    def request_release(self, until: float) -> None:
        """Stop the command if it is not reporting yet and give it back by ``until``."""
        if self.phase in ("new", "claiming", "running"):
            self._release_until = until
            self._release.set()

    async def run(self) -> None:
        """Never raises except on cancellation: every problem ends in a log line and an ack or nak."""
        try:
            await self._run()
        except Exception:
            log.exception("command %s: unexpected error; notice returned", self.command_id)
            self.outcome = "error"
            await self._nak()
        finally:
            self.phase = "done"

    async def _run(self) -> None:
        self.command_id = parse_notice(self.msg.data)
        if self.command_id is None:
            log.warning("dropping a malformed notice: %s", _preview(self.msg.data.decode("utf-8", "replace")))
            self.outcome = "malformed"
            await self._ack()
            return
        if self._release.is_set():
            self.outcome = "returned"
            await self._nak()
            return
        self.phase = "claiming"
        try:
            claim = await self.api.claim(
                self.command_id,
                self.settings.worker_id,
                self.settings.lease,
                until=self.clock() + CLAIM_PATIENCE,
            )
        except ServerUnreachable as exc:
            log.warning("command %s: cannot claim (%s); notice returned", self.command_id, exc)
            self.outcome = "returned"
            await self._nak(delay=1.0)
            return
        except ApiRejected as exc:
            log.warning(
                "command %s: claim refused (%d: %s); notice dropped", self.command_id, exc.status, exc.detail
            )
            self.outcome = "refused"
            await self._ack()
            return
        if claim is None:
            log.info("command %s skipped: claimed elsewhere or finished", self.command_id)
            self.outcome = "skipped"
            await self._ack()
            return
        while claim is not None:
            claim = await self._hold(claim)

    async def _hold(self, claim: Claim) -> Claim | None:
        """Run a claimed command and report its end; the command the server handed this job in
        the report's answer (chained dispatch), to run next in the same slot."""
        self.claim = claim
        self.command_id = claim.command_id
        self._lost = asyncio.Event()
        self.phase = "running"
        started_at = self.clock()
        if self._release.is_set():
            await self._give_back(started_at)
            return None
        if claim.started:
            log.debug(
                "command %s %s started (attempt %d)", claim.command_id, _kind(claim.tool), claim.attempt
            )
        elif not await self._started(claim):
            return None
        outcome = await self._execute(claim)
        if outcome is None:
            if self._lost.is_set():
                log.warning(
                    "command %s %s lease lost after %.2fs: stopped it",
                    claim.command_id,
                    _kind(claim.tool),
                    self.clock() - started_at,
                )
                self.outcome = "lost"
                await self._ack()
            else:
                await self._give_back(started_at)
            return None
        self.phase = "reporting"
        handed = await self._report(claim, outcome, self.clock() - started_at)
        if handed is None:
            return None
        # Its notice was never published: nothing to ack, nak or keep in progress. Whatever
        # goes wrong from here is the lease's to mend (the reaper re-queues it at expiry).
        self.msg = HANDED
        log.debug("command %s handed in the answer (attempt %d)", handed.command_id, handed.attempt)
        if not self.wants_more():
            # The worker began to stop while the report was on its way: another worker takes it.
            self.claim, self.command_id = handed, handed.command_id
            await self._give_back(self.clock())
            return None
        return handed

    async def _started(self, claim: Claim) -> bool:
        try:
            stored = await self.api.event(
                claim,
                self.settings.worker_id,
                "started",
                {},
                0,
                until=self.clock() + CLAIM_PATIENCE,
            )
        except ServerUnreachable as exc:
            log.warning("command %s: cannot report started (%s); notice returned", claim.command_id, exc)
            self.outcome = "returned"
            await self._nak(delay=1.0)
            return False
        if not stored:
            log.warning("command %s: lease lost before it started", claim.command_id)
            self.outcome = "lost"
            await self._ack()
            return False
        log.info("command %s %s started (attempt %d)", claim.command_id, _kind(claim.tool), claim.attempt)
        return True

    async def _execute(self, claim: Claim) -> Outcome | None:
        """The tool's outcome, or ``None`` when it was stopped (release requested or lease lost)."""
        ctx = ToolContext(timeout=claim.timeout, base_env=self.settings.base_env)
        tool = asyncio.ensure_future(self.runner(claim.tool, ctx))
        beats = asyncio.ensure_future(self._heartbeat(claim))
        release = asyncio.ensure_future(self._release.wait())
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({tool, release, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (beats, release, lost):
                task.cancel()
            if not tool.done():
                tool.cancel()  # the tool kills its process group on the way out
                await asyncio.gather(tool, return_exceptions=True)
        if tool.cancelled():
            return None
        return tool.result()

    async def _heartbeat(self, claim: Claim) -> None:
        interval = self.settings.heartbeat_interval
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(*NATS_ERRORS):
                await self.msg.in_progress()  # keeps the notice from being redelivered meanwhile
            try:
                held = await self.api.heartbeat(
                    claim,
                    self.settings.worker_id,
                    self.settings.lease,
                    until=self.clock() + interval,
                )
            except (ServerUnreachable, ApiRejected) as exc:
                log.warning("command %s: lease heartbeat failed: %s", claim.command_id, exc)
                continue
            if not held:
                self._lost.set()
                return

    async def _report(self, claim: Claim, outcome: Outcome, duration: float) -> Claim | None:
        """Report the end; the command handed in the answer, if this job asked for one."""
        kind = "completed" if outcome.ok else "failed"
        until = self.clock() + self.settings.report_patience
        # Asked for when the report is sent: a worker that is stopping takes nothing more.
        take_lease = self.settings.lease if self.wants_more() else None

        async def send(kind: str, outcome: Outcome, seq: int) -> Reported:
            nonlocal take_lease
            worker = self.settings.worker_id
            payload = outcome.payload()
            try:
                return await self.api.report(
                    claim, worker, kind, payload, seq, until=until, take_lease=take_lease
                )
            except ApiRejected as exc:
                if exc.status != 422 or take_lease is None:
                    raise
                # A server older than chained dispatch refuses `take` as unknown: report as before.
                take_lease = None
                return await self.api.report(claim, worker, kind, payload, seq, until=until)

        try:
            try:
                reported = await send(kind, outcome, 1)
            except ApiRejected as exc:
                # The result cannot be stored (too large, not storable): the command fails, saying why.
                outcome = Outcome(
                    ok=False, error=f"the server refused the {kind} event ({exc.status}): {exc.detail}"
                )
                kind = "failed"
                reported = await send(kind, outcome, 2)
        except ServerUnreachable as exc:
            log.error(
                "command %s %s %s in %.2fs but the server did not take the result (%s); "
                "the lease will expire and the command run again",
                claim.command_id,
                _kind(claim.tool),
                kind,
                duration,
                exc,
            )
            self.outcome = "unreported"
            await self._nak()
            return None
        if not reported.stored:
            log.warning(
                "command %s %s %s in %.2fs but its lease was lost: result dropped",
                claim.command_id,
                _kind(claim.tool),
                kind,
                duration,
            )
            self.outcome = "lost"
            await self._ack()
            return None
        self.outcome = kind
        if outcome.ok:
            log.info("command %s %s completed in %.2fs", claim.command_id, _kind(claim.tool), duration)
        else:
            log.info(
                "command %s %s failed in %.2fs: %s",
                claim.command_id,
                _kind(claim.tool),
                duration,
                _preview(outcome.error),
            )
        await self._ack()
        return reported.next

    async def _give_back(self, started_at: float) -> None:
        assert self.claim is not None
        claim = self.claim
        until = self._release_until if self._release_until is not None else self.clock() + 5.0
        try:
            await self.api.release(claim, self.settings.worker_id, until=until)
        except (ServerUnreachable, ApiRejected) as exc:
            log.warning(
                "command %s: release failed (%s); its lease will expire instead", claim.command_id, exc
            )
            self.outcome = "unreleased"
            await self._nak()
            return
        log.info(
            "command %s %s released after %.2fs: the worker is stopping",
            claim.command_id,
            _kind(claim.tool),
            self.clock() - started_at,
        )
        self.outcome = "released"
        await self._ack()  # the server published a new notice for the next attempt

    async def _ack(self) -> None:
        try:
            await self.msg.ack()
        except NATS_ERRORS as exc:
            log.warning("command %s: ack failed (%r); the notice will come back", self.command_id, exc)

    async def _nak(self, delay: float | None = None) -> None:
        try:
            await self.msg.nak(delay=delay)
        except NATS_ERRORS as exc:
            log.warning("command %s: nak failed (%r); the notice will come back later", self.command_id, exc)
