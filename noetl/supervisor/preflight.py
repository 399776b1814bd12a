"""Checks `noetl run` makes before it starts anything: each refuses with one line and an exit code."""

from __future__ import annotations

from noetl.errors import ConfigError
from noetl.ports import check_free
from noetl.settings import Settings
from noetl.supervisor.embedded import Plan


def check_database(settings: Settings) -> None:
    """A role that runs the server needs a PostgreSQL: configured, or embedded (``settings`` effective)."""
    if settings.role in ("all", "server") and not settings.postgres_host:
        raise ConfigError(
            "POSTGRES_HOST is not set and NOETL_EMBEDDED=never: set POSTGRES_HOST "
            "(and POSTGRES_PORT, POSTGRES_DB, POSTGRES_USER, POSTGRES_PASSWORD) or allow the embedded one"
        )


def check_port(settings: Settings) -> None:
    """Refuse at once when the server could never bind, instead of letting it crash-loop."""
    if settings.role in ("all", "server"):
        check_free(settings.host, settings.port)


def check_embedded_ports(settings: Settings, what: Plan) -> None:
    """The embedded services' ports must be free (they listen on 127.0.0.1)."""
    if what.postgres and settings.embedded_postgres_port:
        check_free("127.0.0.1", settings.embedded_postgres_port, "NOETL_EMBEDDED_POSTGRES_PORT")
    if what.nats:
        check_free("127.0.0.1", settings.embedded_nats_port, "NOETL_EMBEDDED_NATS_PORT")
