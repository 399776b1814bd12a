"""The schema migrated while the server imports: a thread started before FastAPI and the routes load.

On an empty database the migrations take 40-60 ms of PostgreSQL's time. The lifespan's
``Database.open`` waited for them after the server's imports (~0.6 s of CPU), on every first start's
way to ready; started first, they run meanwhile, and ``open`` finds them applied (its own
``migrate`` takes the same advisory lock, so it waits if this one is still in its transaction).
Any failure here is silent: ``open`` runs them again, and says what is wrong as it retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from noetl.settings import Settings


def migrate_ahead(settings: Settings) -> threading.Thread:
    """Start applying the migrations in a thread of their own (a daemon: it never holds a stop)."""
    thread = threading.Thread(target=_run, args=(settings,), name="noetl-migrate-ahead", daemon=True)
    thread.start()
    return thread


def _run(settings: Settings) -> None:
    with contextlib.suppress(Exception):
        asyncio.run(_migrate(settings))


async def _migrate(settings: Settings) -> None:
    import asyncpg

    from noetl.server.db import connect_args, say_applied
    from noetl.server.migrations import migrate

    conn = await asyncpg.connect(**connect_args(settings))
    try:
        say_applied(settings, await migrate(conn))
    finally:
        await conn.close()
