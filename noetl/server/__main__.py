"""``python -m noetl.server [--host H] [--port P] [--init-db]``: the API server on uvicorn.

Configuration errors (POSTGRES_HOST unset, a bad setting, the port taken) end the process at once
with one line on stderr and a distinct exit code; PostgreSQL or NATS being down does not (the
server starts, reports 503 on /api/ready and connects when they come up), so a supervisor does
not restart it in a loop.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from collections.abc import Sequence

from noetl import ports
from noetl.errors import NoetlError
from noetl.logs import configure_logging
from noetl.procs import not_dumpable
from noetl.settings import Settings, add_flags, flag_values, load_settings
from noetl.tokens import ensure_tokens

log = logging.getLogger("noetl.server")

INIT_DB_WAIT = 30.0  # seconds --init-db waits for PostgreSQL to come up


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m noetl.server",
        description="The NoETL API server (settings: NOETL_*, POSTGRES_*, NATS_URL).",
    )
    add_flags(parser, "host", "port")
    parser.add_argument(
        "--init-db",
        action="store_true",
        help=f"create or upgrade the schema first and fail if PostgreSQL is not up within {INIT_DB_WAIT:g}s",
    )
    return parser


def graceful_timeout(stop_timeout: int, cleanup: float) -> int:
    """Seconds uvicorn waits for requests in flight, leaving ``cleanup`` and 1 s of margin."""
    return max(1, int(stop_timeout - cleanup - 1))


def bind(host: str, port: int) -> socket.socket:
    """Listen on host:port here, so a taken port is one clear line instead of uvicorn's log."""
    sock = ports.bind(host, port)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, sock: socket.socket, migrated: bool = False) -> None:
    """Run uvicorn on ``sock``; unless ``migrated`` (``--init-db`` did it), the schema's
    migrations start first, in a thread, while the imports below run (~0.6 s of CPU)."""
    if not migrated:
        from noetl.server.ahead import migrate_ahead

        migrate_ahead(settings)
    import uvicorn

    from noetl.server.app import CLEANUP_BUDGET, create_app
    from noetl.server.serving import PromptServer

    config = uvicorn.Config(
        create_app(settings),
        log_config=None,
        access_log=settings.log_level == "debug",
        timeout_graceful_shutdown=graceful_timeout(settings.stop_timeout, CLEANUP_BUDGET),
        lifespan="on",
        server_header=False,
        limit_concurrency=settings.limit_concurrency,
    )
    log.info(
        "listening on %s:%d; postgres %s:%d/%s; nats %s; api token %s",
        settings.host,
        settings.port,
        settings.postgres_host,
        settings.postgres_port,
        settings.postgres_db,
        settings.shown("nats_url"),
        "required" if settings.auth == "token" else "off (NOETL_AUTH=none)",
    )
    PromptServer(config).run(sockets=[sock])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    not_dumpable()  # its environment holds the database password and the tokens; tools run as its user
    try:
        settings = ensure_tokens(load_settings(flags=flag_values(args)))
        configure_logging(settings.log_level, settings.log_format, "server")
        from noetl.server.initdb import init_database, require_postgres_host

        require_postgres_host(settings)
        if args.init_db:
            result = asyncio.run(init_database(settings, INIT_DB_WAIT))
            log.info("schema at version %d (applied now: %s)", result.version, result.applied or "none")
        sock = bind(settings.host, settings.port)
    except NoetlError as exc:
        print(f"noetl server: {exc}", file=sys.stderr)
        return exc.exit_code
    serve(settings, sock, migrated=args.init_db)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
