"""Create or upgrade the schema and stop: `noetl db init` and `python -m noetl.server --init-db`."""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg

from noetl.errors import ConfigError, NoetlError, NotRunningError
from noetl.retry import Backoff, retry
from noetl.server.db import UNAVAILABLE_ERRORS, connect_once, where
from noetl.server.migrations import current_version, migrate
from noetl.settings import Settings

# Between attempts while PostgreSQL is not up yet: soon at first, then every second, so the
# ``wait`` given is used to within a second.
INIT_BACKOFF = Backoff(first=0.2, cap=1.0)


@dataclass(frozen=True)
class InitResult:
    applied: list[int]
    version: int


def require_postgres_host(settings: Settings) -> None:
    if not settings.postgres_host:
        raise ConfigError(
            "POSTGRES_HOST is not set: set POSTGRES_HOST (and POSTGRES_PORT/DB/USER/PASSWORD) to your "
            "PostgreSQL; embedded PostgreSQL comes in a later issue"
        )


async def init_database(settings: Settings, wait: float) -> InitResult:
    """Apply the migrations, retrying for up to ``wait`` seconds while PostgreSQL is unreachable."""
    require_postgres_host(settings)
    place = where(settings)

    async def attempt() -> InitResult:
        conn = await connect_once(settings)
        try:
            applied = await migrate(conn)
            return InitResult(applied, await current_version(conn))
        finally:
            await conn.close()

    try:
        return await retry(
            attempt, errors=UNAVAILABLE_ERRORS, backoff=INIT_BACKOFF, until=time.monotonic() + wait
        )
    except UNAVAILABLE_ERRORS as exc:
        raise NotRunningError(
            f"PostgreSQL at {place} is not reachable ({type(exc).__name__}: {exc}); "
            "start it or fix POSTGRES_HOST/POSTGRES_PORT"
        ) from None
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise ConfigError(
            f"PostgreSQL at {place} refused user {settings.postgres_user!r}: {exc}; "
            "fix POSTGRES_USER/POSTGRES_PASSWORD"
        ) from None
    except asyncpg.InvalidCatalogNameError:
        raise ConfigError(
            f"database {settings.postgres_db!r} does not exist at {place}: create it or fix POSTGRES_DB"
        ) from None
    except asyncpg.InsufficientPrivilegeError as exc:
        raise ConfigError(
            f"user {settings.postgres_user!r} may not create the schema at {place}: {exc}"
        ) from None
    except asyncpg.PostgresError as exc:
        raise NoetlError(f"schema migration failed at {place}: {type(exc).__name__}: {exc}") from None
