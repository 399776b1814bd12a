"""The PostgreSQL connection pool, kept alive across database outages.

The server must start and answer probes while PostgreSQL is down, so the pool is opened by a
background task (``Database.keep_open``) that retries until it succeeds and then runs the
migrations. Route code asks for a connection with ``Database.connection()``: while no pool is open,
or when the connection breaks, it raises ``DatabaseUnavailable``, which the app turns into a 503.

Bounded under load: a caller waits at most ``NOETL_DB_ACQUIRE_TIMEOUT`` for a connection, then gets
``DatabaseBusy`` (503 with Retry-After). Reads for people (lists, pages of events, scrapes) take
``connection(lane="read")`` and share at most half of the pool, so a flood of slow reads can never
hold every connection: the rest stays for claims, heartbeats and events, and work goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

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

Lane = Literal["work", "read"]


def read_slots(pool_size: int) -> int:
    """Connections reads for people may hold at once: half the pool, at least one."""
    return max(1, pool_size // 2)


class DatabaseUnavailable(Exception):
    """PostgreSQL cannot be reached now; the request may be retried later."""


class DatabaseBusy(DatabaseUnavailable):
    """Every pooled connection stayed in use for the acquire timeout; retry in a moment."""


async def _no_reset(conn: asyncpg.Connection) -> None:
    """What a connection needs on its way back to the pool: nothing beyond asyncpg's own rollback of
    an unfinished transaction. The default reset (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL)
    is a round trip per request for state this server never leaves behind: its advisory locks
    are transaction-scoped, and it sets, declares and listens to nothing."""


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


def where(settings: Settings) -> str:
    """host:port/db for log lines (no user, no password)."""
    return f"{settings.postgres_host}:{settings.postgres_port}/{settings.postgres_db}"


def say_applied(settings: Settings, applied: list[int]) -> None:
    """The log line of migrations applied (by ``Database.open`` or ahead of it, ``ahead.py``)."""
    if applied:
        log.info("database %s: applied schema migrations %s", where(settings), applied)


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
        self._reads = asyncio.Semaphore(read_slots(settings.db_pool_size))

    @property
    def where(self) -> str:
        """host:port/db for log lines (no user, no password)."""
        return where(self.settings)

    async def open(self) -> None:
        """Open the pool and run the migrations once; raises on failure."""
        pool = await asyncpg.create_pool(
            # min_size 0: no "restore the connection floor" task that logs a traceback per retry
            # while PostgreSQL is down; connections open on demand and stay for reuse.
            min_size=0,
            max_size=self.settings.db_pool_size,
            init=_init_connection,
            reset=_no_reset,
            **connect_args(self.settings),
        )
        try:
            async with pool.acquire() as conn:
                applied = await migrate(conn)
        except BaseException:
            pool.terminate()
            raise
        say_applied(self.settings, applied)
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
    async def connection(self, lane: Lane = "work") -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; any connection-level failure becomes ``DatabaseUnavailable``, no
        free connection within the acquire timeout ``DatabaseBusy``. ``lane="read"``: a read for
        people, which shares at most ``read_slots`` connections."""
        pool = self.pool
        if pool is None:
            raise DatabaseUnavailable("database not connected")
        wait = self.settings.db_acquire_timeout
        deadline = asyncio.get_running_loop().time() + wait
        async with contextlib.AsyncExitStack() as stack:
            if lane == "read":
                try:
                    async with asyncio.timeout(wait):
                        await self._reads.acquire()
                except TimeoutError:
                    raise DatabaseBusy(
                        f"the {read_slots(self.settings.db_pool_size)} database connections for reads "
                        f"stayed busy for {wait:g}s"
                    ) from None
                stack.callback(self._reads.release)
            left = max(0.001, deadline - asyncio.get_running_loop().time())
            try:
                conn = await pool.acquire(timeout=left)
            except TimeoutError:
                raise DatabaseBusy(
                    f"all {self.settings.db_pool_size} database connections stayed busy for {wait:g}s"
                ) from None
            except UNAVAILABLE_ERRORS as exc:
                raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
            try:
                yield conn
            except UNAVAILABLE_ERRORS as exc:
                raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
            finally:
                await self._release(pool, conn)

    @staticmethod
    async def _release(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
        """Give ``conn`` back. asyncpg re-raises what the release's reset met (a ROLLBACK on a
        dead or frozen server) after terminating the connection: the pool has already dropped it,
        and the request's outcome, an answer or its own error, stands."""
        try:
            await pool.release(conn)
        except UNAVAILABLE_ERRORS as exc:
            log.debug("database connection dropped on release (%s: %s)", type(exc).__name__, exc)

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
