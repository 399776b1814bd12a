"""`noetl db init`: create or upgrade the database schema (what `python -m noetl.server --init-db` does).
`noetl db prune`: delete finished executions and silent workers older than a duration, now."""

from __future__ import annotations

import argparse
import re

from noetl.errors import EXIT_OK, ConfigError
from noetl.settings import load_settings

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("db", help="database: init the schema, prune old executions")
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
    prune = actions.add_parser(
        "prune",
        help="delete finished executions and silent workers older than a duration, now",
        description="Delete executions that finished (COMPLETED, FAILED, CANCELLED) before the given "
        "age, with their commands, step runs and events, in batches; and workers whose last heartbeat "
        "is that old. Running executions are never deleted. The server does the same every hour with "
        "NOETL_RETENTION_DAYS.",
    )
    prune.add_argument(
        "--older-than",
        metavar="AGE",
        help="a number and a unit: 90s, 30m, 12h, 7d, 2w (default: NOETL_RETENTION_DAYS days)",
    )
    prune.set_defaults(handler=handle_prune)


def handle_init(args: argparse.Namespace) -> int:
    import asyncio

    from noetl.server.initdb import init_database

    result = asyncio.run(init_database(load_settings(), max(args.wait, 0.0)))
    if result.applied:
        print(f"schema at version {result.version} (applied {', '.join(map(str, result.applied))})")
    else:
        print(f"schema already at version {result.version}")
    return EXIT_OK


def parse_age(text: str) -> float:
    """``7d`` -> seconds; ConfigError naming the flag otherwise."""
    found = _DURATION.match(text)
    if found is None or float(found[1]) <= 0:
        raise ConfigError(f"--older-than {text!r}: expected a number and a unit s, m, h, d or w, like 7d")
    return float(found[1]) * _UNITS[found[2]]


def handle_prune(args: argparse.Namespace) -> int:
    import asyncio

    from noetl.server.retention import DAY, describe, prune_now

    settings = load_settings()
    if args.older_than is not None:
        age = parse_age(args.older_than)
    elif settings.retention_days:
        age = settings.retention_days * DAY
    else:
        raise ConfigError("NOETL_RETENTION_DAYS is 0 (keep everything): give --older-than AGE to prune")
    print(describe(asyncio.run(prune_now(settings, age))))
    return EXIT_OK
