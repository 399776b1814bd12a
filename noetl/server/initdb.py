"""Create or upgrade the schema and stop: `noetl db init` and `python -m noetl.server --init-db`."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg

from noetl.errors import ConfigError, NoetlError, NotRunningError
from noetl.server.db import UNAVAILABLE_ERRORS, connect_once
from noetl.server.migrations import MIGRATIONS, current_version, migrate
from noetl.settings import Settings


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
    where = f"{settings.postgres_host}:{settings.postgres_port}/{settings.postgres_db}"
    deadline = time.monotonic() + wait
    while True:
        try:
            conn = await connect_once(settings)
            try:
                applied = await migrate(conn)
                return InitResult(applied, await current_version(conn))
            finally:
                await conn.close()
        except UNAVAILABLE_ERRORS as exc:
            if time.monotonic() >= deadline:
                raise NotRunningError(
                    f"PostgreSQL at {where} is not reachable ({type(exc).__name__}: {exc}); "
                    "start it or fix POSTGRES_HOST/POSTGRES_PORT"
                ) from None
            await asyncio.sleep(0.5)
        except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
            raise ConfigError(
                f"PostgreSQL at {where} refused user {settings.postgres_user!r}: {exc}; "
                "fix POSTGRES_USER/POSTGRES_PASSWORD"
            ) from None
        except asyncpg.InvalidCatalogNameError:
            raise ConfigError(
                f"database {settings.postgres_db!r} does not exist at {where}: create it or fix POSTGRES_DB"
            ) from None
        except asyncpg.InsufficientPrivilegeError as exc:
            raise ConfigError(
                f"user {settings.postgres_user!r} may not create the schema at {where}: {exc}"
            ) from None
        except asyncpg.PostgresError as exc:
            raise NoetlError(f"schema migration failed at {where}: {type(exc).__name__}: {exc}") from None


def latest_version() -> int:
    return max(m.version for m in MIGRATIONS)
