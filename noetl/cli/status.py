"""`noetl status [ID] [--json]`: an execution (a playbook's steps, or a command and its events), or
the latest executions."""

from __future__ import annotations

import argparse
import json
import uuid

from noetl.errors import EXIT_OK, ConfigError
from noetl.protocol.words import EXECUTION_STATUSES
from noetl.settings import load_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show an execution (a playbook's steps, or a command and its events), or list the latest",
        description="Ask the server at NOETL_SERVER_URL. A playbook's execution shows each step with its "
        "status, duration and attempts, and the failed step's error. Without ID, list executions, "
        "newest first.",
    )
    parser.add_argument("execution_id", nargs="?", metavar="ID", help="execution id")
    parser.add_argument("--json", action="store_true", help="print the server's JSON")
    parser.add_argument("--status", choices=EXECUTION_STATUSES, help="list only executions with this status")
    parser.add_argument("--limit", type=int, default=20, help="how many to list (default 20, at most 500)")
    parser.add_argument("--offset", type=int, default=0, help="skip this many (default 0, at most 10000)")
    parser.add_argument("--cursor", help="continue a listing where the last one ended (the NEXT it printed)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from noetl.client import ApiClient
    from noetl.client.format import execution_text, executions_table

    if args.execution_id is not None:
        check_id(args.execution_id)
    if not 1 <= args.limit <= 500 or not 0 <= args.offset <= 10_000:
        raise ConfigError("--limit must be 1-500 and --offset 0-10000 (page on with --cursor)")
    with ApiClient.from_settings(load_settings()) as client:
        if args.execution_id is None:
            page = client.executions(args.status, args.limit, args.offset, args.cursor)
            print(json.dumps(page, indent=2) if args.json else executions_table(page))
        else:
            execution = client.execution(args.execution_id)
            print(json.dumps(execution, indent=2) if args.json else execution_text(execution))
    return EXIT_OK


def check_id(execution_id: str) -> None:
    """ConfigError unless ``execution_id`` looks like one (a UUID)."""
    try:
        uuid.UUID(execution_id)
    except ValueError:
        raise ConfigError(
            f"{execution_id!r} is not an execution id (a UUID, as `noetl submit` and `noetl exec` print)"
        ) from None
