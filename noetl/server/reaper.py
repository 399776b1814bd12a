"""The reaper: leases that expired (their worker died or stalled) go back to pending or die.

An expired lease counts as an attempt: the command is re-queued (and re-published) until it has
lost ``max_attempts`` leases, then it is ``dead`` with a ``failed`` event, and its execution
fails (`noetl submit`) or the engine decides what the failed step means (playbook). Several replicas may
reap at once: each row is taken by one of them (SKIP LOCKED).
"""

from __future__ import annotations

import asyncio
import logging

from noetl.server.db import Database, DatabaseUnavailable
from noetl.server.metrics import ServerMetrics
from noetl.server.outbox import Outbox
from noetl.server.queries import commands

log = logging.getLogger(__name__)

BATCH = 200


async def reap_once(db: Database, outbox: Outbox, metrics: ServerMetrics) -> int:
    """Sweep every expired lease now; returns how many commands changed."""
    changed = 0
    while True:
        async with db.connection() as conn:
            notices = await commands.requeue_expired(conn, BATCH)
        if notices:
            outbox.notify(*notices)
            metrics.reaped.labels("requeued").inc(len(notices))
            log.info("reaper: %d expired lease(s) re-queued", len(notices))
        changed += len(notices)
        if len(notices) < BATCH:
            break
    # A last attempt dies one command per transaction: each ends its execution or its step, which
    # takes the execution's lock (before the command's, as everywhere).
    async with db.connection() as conn:
        for command_id in await commands.dying(conn, BATCH):
            followers = await commands.kill_expired(conn, command_id)
            if followers is None:
                continue
            outbox.notify(*followers)
            metrics.reaped.labels("dead").inc()
            log.info("reaper: command %s dead: its last lease expired", command_id)
            changed += 1
    return changed


async def run_reaper(db: Database, outbox: Outbox, metrics: ServerMetrics, interval: float) -> None:
    """Background task: ``reap_once`` every ``interval`` seconds; never returns."""
    while True:
        await asyncio.sleep(interval)
        try:
            await reap_once(db, outbox, metrics)
        except DatabaseUnavailable as exc:
            log.debug("reaper: database unavailable (%s)", exc)
        except Exception:
            log.exception("reaper: unexpected error; retrying in %.1fs", interval)
