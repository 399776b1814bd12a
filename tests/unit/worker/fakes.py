"""Small in-memory stand-ins for the worker's collaborators: a server that keeps leases like the
real one (docs/api.md), NATS messages that record how they were settled, and a queue of notices."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from noetl.tools.registry import Outcome, ToolContext
from noetl.worker.api import ApiRejected, Claim, Reported, ServerUnreachable


@dataclass
class FakeMsg:
    data: bytes
    settled: list[str] = field(default_factory=list)
    progress: int = 0

    @classmethod
    def notice(cls, command_id: str, attempt: int = 1) -> FakeMsg:
        body = {"command_id": command_id, "execution_id": "e-" + command_id, "attempt": attempt}
        return cls(json.dumps(body).encode())

    async def ack(self) -> None:
        self.settled.append("ack")

    async def nak(self, delay: float | None = None) -> None:
        self.settled.append("nak")

    async def in_progress(self) -> None:
        self.progress += 1


@dataclass
class Command:
    tool: dict[str, Any]
    status: str = "pending"
    attempt: int = 0
    worker_id: str | None = None
    timeout: float = 30.0
    lease: str = ""


class FakeServer:
    """The lease rules of the real server, in memory: claim takes a pending command as a new
        attempt with a new lease secret; events, heartbeats and releases need the current lease holder's
    attempt and secret."""

    def __init__(self) -> None:
        self.commands: dict[str, Command] = {}
        self.events: list[tuple[str, int, str, dict[str, Any], int]] = []
        self.calls: list[str] = []
        self.unreachable = False
        self.reject_completed: ApiRejected | None = None
        # Chained dispatch: the commands to hand, in turn, to a final report that asks for one.
        self.to_hand: list[str] = []
        self.takes: list[float | None] = []  # each final report's ``take_lease``
        self.knows_take = True  # False: a server older than chained dispatch (422 for ``take``)

    def add(self, command_id: str, tool: dict[str, Any] | None = None, timeout: float = 30.0) -> None:
        self.commands[command_id] = Command(tool or {"kind": "shell", "command": "true"}, timeout=timeout)

    def types(self, command_id: str) -> list[str]:
        return [kind for cid, _, kind, _, _ in self.events if cid == command_id]

    def _check(self) -> None:
        if self.unreachable:
            raise ServerUnreachable("fake server down")

    def _holds(self, claim: Claim, worker_id: str) -> bool:
        cmd = self.commands.get(claim.command_id)
        return (
            cmd is not None
            and cmd.status == "claimed"
            and (cmd.worker_id, cmd.attempt, cmd.lease) == (worker_id, claim.attempt, claim.lease)
        )

    async def claim(
        self, command_id: str, worker_id: str, lease: float, *, until: float | None
    ) -> Claim | None:
        self.calls.append("claim")
        self._check()
        return self._take(command_id, worker_id)

    def _take(self, command_id: str, worker_id: str) -> Claim | None:
        cmd = self.commands.get(command_id)
        if cmd is None or cmd.status != "pending":
            return None
        cmd.status, cmd.attempt, cmd.worker_id = "claimed", cmd.attempt + 1, worker_id
        cmd.lease = f"secret-{command_id}-{cmd.attempt}"
        return Claim(command_id, "e-" + command_id, cmd.attempt, cmd.lease, cmd.tool, cmd.timeout, None)

    async def event(
        self,
        claim: Claim,
        worker_id: str,
        kind: str,
        payload: dict[str, Any],
        seq: int,
        *,
        until: float | None,
    ) -> bool:
        self.calls.append(kind)
        self._check()
        if kind == "completed" and self.reject_completed is not None:
            raise self.reject_completed
        if not self._holds(claim, worker_id):
            return False
        self.events.append((claim.command_id, claim.attempt, kind, payload, seq))
        if kind in ("completed", "failed"):
            self.commands[claim.command_id].status = kind
        return True

    async def report(
        self,
        claim: Claim,
        worker_id: str,
        kind: str,
        payload: dict[str, Any],
        seq: int,
        *,
        until: float | None,
        take_lease: float | None = None,
    ) -> Reported:
        if take_lease is not None and not self.knows_take:
            self.calls.append("refused take")
            raise ApiRejected(422, "take: Extra inputs are not permitted")
        stored = await self.event(claim, worker_id, kind, payload, seq, until=until)
        if kind not in ("completed", "failed"):
            return Reported(stored)
        self.takes.append(take_lease)
        if not stored or take_lease is None or not self.to_hand:
            return Reported(stored)
        handed = self._take(self.to_hand.pop(0), worker_id)
        if handed is not None:
            handed = Claim(**{**handed.__dict__, "started": True})
            self.events.append((handed.command_id, handed.attempt, "started", {}, 0))
        return Reported(stored, handed)

    async def heartbeat(self, claim: Claim, worker_id: str, lease: float, *, until: float | None) -> bool:
        self.calls.append("heartbeat")
        self._check()
        return self._holds(claim, worker_id)

    async def release(self, claim: Claim, worker_id: str, *, until: float | None) -> bool:
        self.calls.append("release")
        self._check()
        if not self._holds(claim, worker_id):
            return False
        self.commands[claim.command_id].status = "pending"
        self.events.append((claim.command_id, claim.attempt, "released", {}, 0))
        return True

    def steal(self, command_id: str) -> None:
        """Another attempt takes the command over (the lease expired and someone else claimed it)."""
        cmd = self.commands[command_id]
        cmd.attempt += 1
        cmd.worker_id = "someone-else"


class ScriptedTools:
    """A tool runner whose commands finish when the test says so (or at once with ``instant``)."""

    def __init__(self, instant: bool = False) -> None:
        self.instant = instant
        self.started: list[Any] = []
        self.cancelled: list[Any] = []
        self.running = 0
        self.most_at_once = 0
        self.gates: dict[str, asyncio.Event] = {}

    def finish(self, name: str) -> None:
        self.gates.setdefault(name, asyncio.Event()).set()

    async def __call__(self, tool: Any, ctx: ToolContext) -> Outcome:
        name = tool.get("name", "")
        self.started.append(name)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            if not self.instant:
                await self.gates.setdefault(name, asyncio.Event()).wait()
            if tool.get("fail"):
                return Outcome(ok=False, error="it failed")
            return Outcome(ok=True, result={"name": name})
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        finally:
            self.running -= 1


class QueueSource:
    """Notices from an asyncio queue, like ``consumer.Notices.fetch``."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[FakeMsg] = asyncio.Queue()

    def put(self, msg: FakeMsg) -> FakeMsg:
        self.queue.put_nowait(msg)
        return msg

    async def fetch(self, count: int, timeout: float) -> list[FakeMsg]:
        """The first notice as it comes (within ``timeout``), then what else waits, up to ``count``."""
        try:
            msgs = [await asyncio.wait_for(self.queue.get(), timeout)]
        except TimeoutError:
            return []
        while len(msgs) < count and not self.queue.empty():
            msgs.append(self.queue.get_nowait())
        return msgs
