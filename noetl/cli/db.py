"""`noetl db init`: create or upgrade the database schema (what `python -m noetl.server --init-db` does)."""

from __future__ import annotations

import argparse

from noetl.errors import EXIT_OK
from noetl.settings import load_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("db", help="database schema: init")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init",
        help="create or upgrade the schema (idempotent; safe while servers start)",
        description="Apply the schema migrations to the PostgreSQL named by POSTGRES_*; "
        "exit 4 if it is unreachable.",
    )
    init.add_argument(
        "--wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="keep retrying this long while PostgreSQL is unreachable (default 10)",
    )
    init.set_defaults(handler=handle_init)


def handle_init(args: argparse.Namespace) -> int:
    import asyncio

    from noetl.server.initdb import init_database

    result = asyncio.run(init_database(load_settings(), max(args.wait, 0.0)))
    if result.applied:
        print(f"schema at version {result.version} (applied {', '.join(map(str, result.applied))})")
    else:
        print(f"schema already at version {result.version}")
    return EXIT_OK
