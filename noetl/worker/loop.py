"""The worker loop: fetch notices into at most ``concurrency`` jobs at once, and drain on stop.

Drain: on the first stop request fetching stops (a notice already on its way is handed back
with a nak); running commands go on until the drain deadline; then whatever still runs is released
to the server (its processes killed) so another worker takes it at once; the loop returns before
the leave deadline, ahead of supervisord's SIGKILL. A second stop request moves both deadlines to now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from noetl.protocol.nats import NATS_ERRORS
from noetl.tools.deferred import run_tool
from noetl.worker.api import ServerApi
from noetl.worker.drain import DrainBudget
from noetl.worker.job import Delivery, Job, JobSettings, Runner
from noetl.worker.signals import StopRequest

log = logging.getLogger("noetl.worker")

FETCH_TIMEOUT = 1.0  # seconds a fetch waits for a notice before the loop looks around again
# After a second stop request, releasing what runs may take this long (a release is one quick call).
RELEASE_NOW_WINDOW = 1.0


class Source(Protocol):
    """Where notices come from (``consumer.Notices``; a queue in unit tests)."""

    async def fetch(self, count: int, timeout: float) -> Sequence[Delivery]:
        """At most ``count`` notices; none when none came within ``timeout``."""
        ...


class WorkerLoop:
    def __init__(
        self,
        source: Source,
        api: ServerApi,
        job_settings: JobSettings,
        concurrency: int,
        stop: StopRequest,
        budget: DrainBudget,
        *,
        runner: Runner = run_tool,
        clock: Callable[[], float] = time.monotonic,
        fetch_timeout: float = FETCH_TIMEOUT,
        chain: bool = True,
    ) -> None:
        self.source = source
        self.api = api
        self.job_settings = job_settings
        self.concurrency = concurrency
        self.stop = stop
        self.budget = budget
        self.runner = runner
        self.clock = clock
        self.fetch_timeout = fetch_timeout
        self.chain = chain
        self.jobs: dict[asyncio.Task[None], Job] = {}
        self._slot_freed = asyncio.Event()

    def running(self) -> list[str]:
        """Command ids this worker holds a lease on (for the registry heartbeat)."""
        return [job.command_id for job in self.jobs.values() if job.holds_lease and job.command_id]

    async def run(self) -> None:
        """Work until a stop request, then drain; returns when every job is settled."""
        fetcher = asyncio.ensure_future(self._fetch_loop())
        stopped = asyncio.ensure_future(self.stop.drain.wait())
        try:
            await asyncio.wait({fetcher, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if fetcher.done() and not stopped.done():
                fetcher.result()  # the fetch loop only ends by raising: let it out
            await self._drain(fetcher)
        finally:
            stopped.cancel()
            fetcher.cancel()
            await self._cancel_all()

    # --- working ---------------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        while not self.stop.drain.is_set():
            if len(self.jobs) >= self.concurrency:
                self._slot_freed.clear()
                await self._wait_any(self._slot_freed, self.stop.drain)
                continue
            # As many as there are free slots: one round trip to NATS for a batch under load.
            msgs = await self.source.fetch(self.concurrency - len(self.jobs), self.fetch_timeout)
            if self.stop.drain.is_set():
                # Fetched just as the stop came: hand them straight back for another worker.
                for msg in msgs:
                    with contextlib.suppress(*NATS_ERRORS):
                        await msg.nak()
                return
            for msg in msgs:
                self._start(msg)

    def _start(self, msg: Delivery) -> None:
        job = Job(
            msg, self.api, self.job_settings, runner=self.runner, clock=self.clock, wants_more=self._can_take
        )
        task = asyncio.ensure_future(job.run())
        self.jobs[task] = job
        task.add_done_callback(self._finished)

    def _can_take(self) -> bool:
        """Whether a job whose command is ending may take the next one in its report's answer
        (chained dispatch): it keeps its own slot, so never while the worker is stopping, nor
        when more jobs run than the concurrency allows."""
        return self.chain and not self.stop.drain.is_set() and len(self.jobs) <= self.concurrency

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.jobs.pop(task, None)
        self._slot_freed.set()

    # --- draining --------------------------------------------------------------------------------

    async def _drain(self, fetcher: asyncio.Future[None]) -> None:
        received = self.stop.received_at if self.stop.received_at is not None else self.clock()
        drain_until = received + self.budget.drain
        leave_until = received + self.budget.leave
        if self.jobs:
            log.info(
                "draining: %d command(s) running; releasing what is left in %.1fs",
                len(self.jobs),
                max(0.0, drain_until - self.clock()),
            )
        await self._settle(drain_until, fetcher)
        if self.jobs:
            if self.stop.now.is_set():
                leave_until = min(leave_until, self.clock() + RELEASE_NOW_WINDOW)
            log.info("releasing %d command(s)", len(self.jobs))
            for job in self.jobs.values():
                job.request_release(leave_until)
            await self._settle(leave_until, fetcher, escalate=False)
        if self.jobs:
            log.warning("leaving with %d command(s) unsettled; their leases will expire", len(self.jobs))

    async def _settle(self, until: float, fetcher: asyncio.Future[None], *, escalate: bool = True) -> None:
        """Wait for the jobs and the last fetch until ``until`` or, when ``escalate``, a second stop."""
        now = asyncio.ensure_future(self.stop.now.wait())
        try:
            while True:
                # Re-read the jobs each time: the last fetch may have started one more.
                pending: set[asyncio.Future[Any]] = {t for t in (*self.jobs, fetcher) if not t.done()}
                timeout = until - self.clock()
                if not pending or timeout <= 0 or (escalate and now.done()):
                    return
                if escalate:
                    pending.add(now)
                await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            now.cancel()

    async def _cancel_all(self) -> None:
        tasks = list(self.jobs)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    @staticmethod
    async def _wait_any(*events: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
