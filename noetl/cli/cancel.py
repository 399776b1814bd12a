"""`noetl cancel ID`: cancel a running execution (its pending steps dropped, running ones stopped)."""

from __future__ import annotations

import argparse

from noetl.errors import EXIT_OK
from noetl.settings import load_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cancel",
        help="cancel a running execution",
        description="Cancel an execution on the server at NOETL_SERVER_URL: pending steps are dropped and "
        "running ones stopped (their process groups killed). Exit 1 when it had already ended.",
    )
    parser.add_argument("execution_id", metavar="ID", help="execution id")
    parser.add_argument("--reason", help="why (recorded with the execution.cancelled event)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from noetl.cli.status import check_id
    from noetl.client import ApiClient

    check_id(args.execution_id)
    with ApiClient.from_settings(load_settings()) as client:
        answer = client.cancel(args.execution_id, args.reason)
    print(f"execution {answer['execution_id']} {answer['status']}")
    return EXIT_OK
