"""The worker's entry in the server's registry: register at start, heartbeat with what it runs,
deregister on exit, so ``GET /api/workers`` shows who is alive and what each one runs."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from noetl.worker.api import ApiRejected, ServerApi, ServerUnreachable

log = logging.getLogger("noetl.worker")

HEARTBEAT_INTERVAL = 5.0


@dataclass(frozen=True)
class Identity:
    """Who this worker is: ``worker_id`` is ``host:name:pid``, unique per process."""

    host: str
    name: str
    pid: int
    concurrency: int

    @property
    def worker_id(self) -> str:
        return f"{self.host}:{self.name}:{self.pid}"

    @classmethod
    def of_this_process(cls, name: str, concurrency: int) -> Identity:
        return cls(host=socket.gethostname(), name=name, pid=os.getpid(), concurrency=concurrency)

    def registration(self) -> dict[str, object]:
        return {
            "worker_id": self.worker_id,
            "name": self.name,
            "host": self.host,
            "pid": self.pid,
            "concurrency": self.concurrency,
        }


class Registry:
    """Keeps this worker registered while it lives; ``running`` says which commands it holds."""

    def __init__(
        self,
        api: ServerApi,
        identity: Identity,
        running: Callable[[], list[str]],
        interval: float = HEARTBEAT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.identity = identity
        self.running = running
        self.interval = interval
        self.clock = clock

    async def register(self) -> None:
        """Register, waiting as long as the server takes to answer (cancel to give up)."""
        await self.api.register(self.identity.registration(), until=None)
        log.info("registered as %s (concurrency %d)", self.identity.worker_id, self.identity.concurrency)

    async def keep_alive(self) -> None:
        """Heartbeat every ``interval`` seconds until cancelled; register again when forgotten."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                known = await self.api.worker_heartbeat(
                    self.identity.worker_id, self.running(), until=self.clock() + self.interval
                )
                if not known:
                    await self.api.register(self.identity.registration(), until=self.clock() + self.interval)
            except (ServerUnreachable, ApiRejected) as exc:
                log.warning("registry heartbeat failed: %s", exc)

    async def deregister(self, until: float) -> None:
        """Say goodbye; a server that does not answer by ``until`` will see the heartbeats stop."""
        try:
            await self.api.deregister(self.identity.worker_id, until=until)
        except (ServerUnreachable, ApiRejected) as exc:
            log.warning("deregister failed: %s", exc)
