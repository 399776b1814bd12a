"""`noetl exec PATH_OR_FILE`: start a playbook; with --wait, show its steps and exit with its outcome.

    noetl exec examples/hello.yaml --set name=Ada --wait     # a file is registered first
    noetl exec demo/hello --version 2 --payload @payload.json

Without --wait it prints the execution id. With --wait each step is shown as it starts and ends
(a live line on a terminal, plain lines otherwise), then the outcome; exit 0 COMPLETED, 1 FAILED or
CANCELLED. --json prints the server's JSON on stdout (the progress goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from noetl.errors import EXIT_FAILURE, EXIT_OK, ConfigError
from noetl.settings import load_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "exec",
        help="run a playbook from the catalog (a file is registered first)",
        description="Start a playbook on the server at NOETL_SERVER_URL and print the execution id. "
        "PATH_OR_FILE is a catalog path (metadata.path) or a playbook file, which is registered first.",
    )
    parser.add_argument("target", metavar="PATH_OR_FILE", help="catalog path, or a playbook file")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a workload key; VALUE is read as JSON when it parses, else kept as text (repeat)",
    )
    parser.add_argument(
        "--payload", metavar="JSON|@FILE", help="workload keys as a JSON object, or @FILE (JSON or YAML)"
    )
    parser.add_argument("--version", type=int, metavar="N", help="run this version of a catalog path")
    parser.add_argument(
        "--wait",
        action="store_true",
        help="show each step as it runs; exit 0 COMPLETED, 1 FAILED or CANCELLED",
    )
    parser.add_argument("--json", action="store_true", help="print the server's JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from noetl.cli.playbook_files import build_payload, read_text
    from noetl.client import ApiClient, ApiRejected
    from noetl.client.follow import follow

    payload = build_payload(args.payload, args.sets)
    target = Path(args.target)
    with ApiClient.from_settings(load_settings()) as client:
        path, version = args.target, args.version
        if target.is_file():
            if version is not None:
                raise ConfigError(
                    f"--version is for a catalog path; {args.target!r} is a file (it is registered)"
                )
            try:
                entry = client.register(read_text(target, "PATH_OR_FILE"))
            except (ConfigError, ApiRejected) as exc:  # the playbook is invalid: name the file
                raise ConfigError(f"{target}: {exc}") from None
            path, version = entry["path"], entry["version"]
            print(f"{target}: {entry['message']}", file=sys.stderr)
        try:
            execution_id = client.execute(path, payload, version)
        except ApiRejected as exc:
            if exc.status == 404:
                raise ConfigError(str(exc)) from None
            raise
        if not args.wait:
            started = {"execution_id": execution_id, "status": "started"}
            print(json.dumps(started) if args.json else execution_id)
            return EXIT_OK
        print(f"execution {execution_id}", file=sys.stderr)
        stream = sys.stderr if args.json else sys.stdout
        progress = Progress(stream, live=stream.isatty())
        try:
            execution = follow(client, execution_id, progress.show)
        finally:
            progress.close()
    if args.json:
        print(json.dumps(execution, indent=2))
    else:
        print(outcome_line(execution))
    return EXIT_OK if execution["status"] == "COMPLETED" else EXIT_FAILURE


class Progress:
    """Step lines as events arrive: one line each, or one line rewritten in place on a terminal."""

    def __init__(self, stream: TextIO, live: bool) -> None:
        self.stream = stream
        self.live = live
        self.finished_steps = 0
        self._shown = False

    def show(self, event: dict[str, Any]) -> None:
        from noetl.client.format import event_line

        if event["event_type"] == "step.exit":
            self.finished_steps += 1
        line = event_line(event)
        if line is None:
            return
        if self.live:
            self.stream.write(f"\r\033[K[{self.finished_steps} steps done] {line}")
            self._shown = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.live and self._shown:
            self.stream.write("\n")
            self.stream.flush()


def outcome_line(execution: dict[str, Any]) -> str:
    from noetl.client.format import short

    head = f"execution {execution['execution_id']} {execution['status']}"
    if execution.get("error"):
        return f"{head}: {short(execution['error'])}"
    if execution["status"] == "COMPLETED":
        return f"{head}: {short(execution.get('result'))}"
    return head
