"""A worker process from start to exit: wait for the server and NATS, register, work, drain,
deregister. Waiting for a server or NATS that is not up yet is normal, never a crash; a stop
request during that wait ends the process at once with exit 0."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Mapping
from typing import TypeVar

from noetl.errors import EXIT_OK
from noetl.settings import Settings
from noetl.tokens import ensure_tokens
from noetl.tools import deferred, keeper, python_warm, warm
from noetl.tools.base import use_pidfd_watcher
from noetl.worker.api import ServerApi
from noetl.worker.consumer import Notices
from noetl.worker.drain import drain_budget
from noetl.worker.job import JobSettings
from noetl.worker.loop import WorkerLoop
from noetl.worker.registry import Identity, Registry
from noetl.worker.signals import StopRequest

log = logging.getLogger("noetl.worker")

T = TypeVar("T")

GOODBYE_MIN = 0.3
GOODBYE_MAX = 1.0

# What of the worker's environment a tool's child process sees: where programs are, whose home,
# language and time zone. Nothing else (no setting, token, password or NATS URL of the runtime):
# a tool that needs more names it in its own `env`. SUPERVISOR_SERVER_URL (the control socket's
# path, no credential) marks the run's processes: the launcher kills a dead worker's orphaned tool
# processes by it (noetl.supervisor.parent.kill_orphans).
TOOL_ENV = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "SUPERVISOR_SERVER_URL"})
TOOL_ENV_PREFIX = "LC_"


def tool_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment tools' children start from: an allow-list of the worker's own."""
    return {
        name: value for name, value in environ.items() if name in TOOL_ENV or name.startswith(TOOL_ENV_PREFIX)
    }


async def _unless_stopped(step: Awaitable[T], stop: StopRequest) -> tuple[bool, T | None]:
    """Run ``step`` until it finishes or a stop request comes; ``(False, None)`` when stopped first."""
    task = asyncio.ensure_future(step)
    stopped = asyncio.ensure_future(stop.drain.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return False, None
    return True, task.result()


async def serve(settings: Settings, environ: Mapping[str, str], stop: StopRequest | None = None) -> int:
    """Run one worker process until stopped; returns the exit code."""
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = StopRequest()
        stop.install(loop)
    use_pidfd_watcher()
    guard = keeper.Keeper()
    guard.start()
    keeper.install(guard)
    identity = Identity.of_this_process(settings.process_name or "worker", settings.worker_concurrency)
    api = ServerApi(settings.server_url, ensure_tokens(settings).worker_token)
    notices = Notices(settings, name=identity.worker_id)
    budget = drain_budget(settings.worker_stop_timeout)
    base_env = tool_environment(environ)
    work = WorkerLoop(
        notices,
        api,
        JobSettings(worker_id=identity.worker_id, lease=settings.worker_lease, base_env=base_env),
        settings.worker_concurrency,
        stop,
        budget,
        chain=settings.worker_chain,
    )
    registry = Registry(api, identity, work.running)
    keep_alive: asyncio.Future[None] | None = None
    registered = False
    log.info(
        "worker %s starting: server %s, nats %s, concurrency %d",
        identity.worker_id,
        settings.shown("server_url"),
        settings.shown("nats_url"),
        settings.worker_concurrency,
    )
    try:
        registered, _ = await _unless_stopped(registry.register(), stop)
        if not registered:
            log.info("stopped before the server answered")
            return EXIT_OK
        # The template imports while NATS connects. Not before registering: at `noetl run`'s start
        # the server is importing then, on a machine that may have two cores for every process.
        python_warm.warm_up(base_env, settings.python_preload)
        connected, _ = await _unless_stopped(notices.connect(), stop)
        if connected:
            connected, _ = await _unless_stopped(notices.ready(), stop)
        if not connected:
            log.info("stopped before NATS was ready")
            return EXIT_OK
        keep_alive = asyncio.ensure_future(registry.keep_alive())
        log.info("worker %s ready", identity.worker_id)
        deferred.load_kinds()  # now that the server is up: before the first command, not at start
        await work.run()
        return EXIT_OK
    finally:
        if keep_alive is not None:
            keep_alive.cancel()
        now = time.monotonic()
        received = stop.received_at if stop.received_at is not None else now
        # Goodbyes get what is left of the stop budget (a few seconds at most), and at least a moment.
        until = max(min(received + budget.leave, now + GOODBYE_MAX), now + GOODBYE_MIN)
        if registered:
            await registry.deregister(until=until)
        await notices.close(timeout=max(0.1, until - time.monotonic()))
        await api.close()
        warm.stop_all()
        keeper.install(None)
        guard.close()  # kills what a release could not stop in time: no tool outlives its worker
        log.info("worker %s stopped", identity.worker_id)
