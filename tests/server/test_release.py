"""A connection that breaks on its way back to the pool costs the pool that connection, never the
request's answer: asyncpg's ``Pool.release`` re-raises what its reset (a ROLLBACK) met, and before
this was caught a request that had done its work, or had already failed with "database
unavailable", answered 500 (seen when PostgreSQL was SIGKILLed under load)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import pytest

from noetl.server.db import Database, DatabaseUnavailable
from noetl.settings import load_settings
from tests.worker.harness import clean_env


def test_a_connection_hanging_on_release_is_dropped_and_the_request_stands(pg_env: dict[str, str]) -> None:
    settings = load_settings(
        {**clean_env(**pg_env), "NOETL_DB_POOL_SIZE": "2", "NOETL_DB_ACQUIRE_TIMEOUT": "1"}
    )

    async def scenario() -> tuple[int, int]:
        db = Database(settings)
        await db.open()
        backend = 0
        try:
            async with db.connection() as conn:
                backend = conn.get_server_pid()
                # Left open on purpose: the release must roll it back, and the backend, frozen as
                # a crashing server's would be, never answers that ROLLBACK.
                await conn.execute("BEGIN")
                os.kill(backend, signal.SIGSTOP)
            # The body's own failure is what the caller sees, not the release's.
            with pytest.raises(DatabaseUnavailable, match="gone"):
                async with db.connection() as conn:
                    other = conn.get_server_pid()
                    await conn.execute("BEGIN")
                    os.kill(other, signal.SIGSTOP)
                    raise DatabaseUnavailable("gone")
            os.kill(other, signal.SIGCONT)
            os.kill(backend, signal.SIGCONT)
            async with db.connection() as conn:  # the pool goes on with a new connection
                return await conn.fetchval("SELECT 1"), conn.get_server_pid()
        finally:
            if backend:
                with contextlib.suppress(ProcessLookupError):  # continued and gone already
                    os.kill(backend, signal.SIGCONT)
            await db.close(timeout=5)

    one, fresh = asyncio.run(scenario())
    assert one == 1
    assert fresh != 0
