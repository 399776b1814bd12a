"""Retention: finished executions (their commands, step runs and events) and silent workers older
than ``NOETL_RETENTION_DAYS`` are deleted, a batch per transaction, so the tables (and what a list
or a scrape reads) stay bounded. The server does it every ``INTERVAL``; `noetl db prune` does it now.
Running executions are never touched, however old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import asyncpg

from noetl.errors import ConfigError, NotRunningError
from noetl.server.db import UNAVAILABLE_ERRORS, Database, DatabaseUnavailable, connect_once, where
from noetl.server.initdb import require_postgres_host
from noetl.server.queries import executions, workers
from noetl.settings import Settings

log = logging.getLogger(__name__)

BATCH = 500  # executions per transaction: short locks, bounded WAL per statement
INTERVAL = 3600.0  # seconds between two prunes by the server
FIRST_DELAY = 60.0  # seconds after the start before the first (a restart loop does not prune in a loop)
DAY = 86400.0

Connect = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]


async def prune(connect: Connect, older_than_seconds: float, batch: int = BATCH) -> Counter[str]:
    """Delete what finished (or went silent) more than ``older_than_seconds`` ago; the counts of
    executions, commands, steps, events and workers deleted."""
    gone: Counter[str] = Counter()
    while True:
        async with connect() as conn:
            counts = await executions.delete_finished(conn, older_than_seconds, batch)
        gone.update(counts)
        if counts["executions"] < batch:
            break
    async with connect() as conn:
        gone["workers"] += await workers.delete_silent(conn, older_than_seconds)
    return gone


def describe(gone: Counter[str]) -> str:
    """One line: what ``prune`` deleted."""
    return (
        f"deleted {gone['executions']} execution(s) with {gone['commands']} command(s), "
        f"{gone['steps']} step run(s) and {gone['events']} event(s); {gone['workers']} worker(s)"
    )


def one_connection(conn: asyncpg.Connection) -> Connect:
    """``connect`` for ``prune`` over a single connection (`noetl db prune`)."""

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[asyncpg.Connection]:
        yield conn

    return connect


async def run_retention(
    db: Database, days: float, interval: float = INTERVAL, first_delay: float = FIRST_DELAY
) -> None:
    """Background task: ``prune`` every ``interval`` seconds; never returns (not started for 0 days)."""
    await asyncio.sleep(first_delay)
    while True:
        try:
            gone = await prune(db.connection, days * DAY)
            if any(gone.values()):
                log.info("retention (%g days): %s", days, describe(gone))
        except DatabaseUnavailable as exc:
            log.debug("retention: database unavailable (%s)", exc)
        except Exception:
            log.exception("retention: unexpected error; retrying in %.0fs", interval)
        await asyncio.sleep(interval)


async def prune_now(settings: Settings, older_than_seconds: float) -> Counter[str]:
    """`noetl db prune`: ``prune`` over one connection to the PostgreSQL of ``settings``; the
    failures a person can fix become one-line errors."""
    require_postgres_host(settings)
    place = where(settings)
    try:
        conn = await connect_once(settings)
    except UNAVAILABLE_ERRORS as exc:
        raise NotRunningError(
            f"PostgreSQL at {place} is not reachable ({type(exc).__name__}: {exc}); "
            "start it or fix POSTGRES_HOST/POSTGRES_PORT"
        ) from None
    except asyncpg.PostgresError as exc:
        raise ConfigError(f"PostgreSQL at {place} refused the connection: {exc}") from None
    try:
        return await prune(one_connection(conn), older_than_seconds)
    except asyncpg.UndefinedTableError:
        raise ConfigError(f"no noetl schema at {place}: run `noetl db init` first") from None
    finally:
        await conn.close()
