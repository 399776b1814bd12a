"""The PostgreSQL connection pool, kept alive across database outages.

The server must start and answer probes while PostgreSQL is down, so the pool is opened by a
background task (``Database.keep_open``) that retries until it succeeds and then runs the
migrations. Route code asks for a connection with ``Database.connection()``: while no pool is open,
or when the connection breaks, it raises ``DatabaseUnavailable``, which the app turns into a 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from noetl.retry import RECONNECT, retry
from noetl.server.migrations import migrate
from noetl.settings import Settings
from noetl.throttle import Throttle

log = logging.getLogger(__name__)

# Errors that mean "the database is not there right now", not "this query is wrong".
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now, canceled
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.InterfaceError,  # the connection was closed under us
    # A connection PostgreSQL terminated mid-statement (shutdown) can surface as a protocol state
    # error ("cannot switch to state ...; another operation is in progress").
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)

CONNECT_TIMEOUT = 5.0  # seconds to open one connection
COMMAND_TIMEOUT = 15.0  # seconds any one statement may take


class DatabaseUnavailable(Exception):
    """PostgreSQL cannot be reached now; the request may be retried later."""


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("jsonb", "json"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def connect_args(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for asyncpg.connect / create_pool, password included (never logged)."""
    return {
        "host": settings.postgres_host,
        "port": settings.postgres_port,
        "user": settings.postgres_user,
        "password": settings.postgres_password or None,
        "database": settings.postgres_db,
        "timeout": CONNECT_TIMEOUT,
        "command_timeout": COMMAND_TIMEOUT,
    }


async def connect_once(settings: Settings) -> asyncpg.Connection:
    """One plain connection (for `noetl db init`)."""
    conn = await asyncpg.connect(**connect_args(settings))
    await _init_connection(conn)
    return conn


class Database:
    """Owns the pool; ``connection()`` hands out connections or raises ``DatabaseUnavailable``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: asyncpg.Pool | None = None
        self.opened = asyncio.Event()

    @property
    def where(self) -> str:
        """host:port/db for log lines (no user, no password)."""
        s = self.settings
        return f"{s.postgres_host}:{s.postgres_port}/{s.postgres_db}"

    async def open(self) -> None:
        """Open the pool and run the migrations once; raises on failure."""
        pool = await asyncpg.create_pool(
            # min_size 0: no "restore the connection floor" task that logs a traceback per retry
            # while PostgreSQL is down; connections open on demand and stay for reuse.
            min_size=0,
            max_size=self.settings.db_pool_size,
            init=_init_connection,
            **connect_args(self.settings),
        )
        try:
            async with pool.acquire() as conn:
                applied = await migrate(conn)
        except BaseException:
            pool.terminate()
            raise
        if applied:
            log.info("database %s: applied schema migrations %s", self.where, applied)
        self.pool = pool
        self.opened.set()
        log.info("database %s: connected", self.where)

    async def keep_open(self) -> None:
        """Retry ``open`` until it succeeds (background task), with a warning while it fails."""
        if self.pool is not None:
            return
        warn = Throttle(log)

        def unavailable(exc: BaseException) -> None:
            warn(f"database {self.where} unavailable ({type(exc).__name__}: {exc}); retrying")

        await retry(self.open, errors=UNAVAILABLE_ERRORS, backoff=RECONNECT, on_error=unavailable)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; any connection-level failure becomes ``DatabaseUnavailable``."""
        if self.pool is None:
            raise DatabaseUnavailable("database not connected")
        try:
            async with self.pool.acquire() as conn:
                yield conn
        except UNAVAILABLE_ERRORS as exc:
            raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def ping(self, timeout: float = 2.0) -> bool:
        """True when a trivial query answers within ``timeout`` seconds."""
        if self.pool is None:
            return False
        # A restart of PostgreSQL leaves dead connections in the pool; each is dropped on its
        # first failure, so try a second time before calling the database down.
        for _ in range(2):
            try:
                async with asyncio.timeout(timeout), self.connection() as conn:
                    await conn.fetchval("SELECT 1")
                return True
            except (DatabaseUnavailable, TimeoutError):
                continue
        return False

    async def close(self, timeout: float) -> None:
        """Close the pool, waiting at most ``timeout`` seconds for connections in use."""
        pool, self.pool = self.pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout)
        except UNAVAILABLE_ERRORS:  # TimeoutError included
            pool.terminate()
