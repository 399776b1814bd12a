"""`noetl submit`: create an execution with one command, optionally wait for its result.

    noetl submit shell --command 'echo hi'
    noetl submit python --code 'result = 1 + 1' --arg n=3
    noetl submit http --url https://example.com --method GET
    noetl submit --file cmd.json            # {"tool": {...}, "timeout": 30, "max_attempts": 3}

Without --wait it prints the execution id. With --wait the id goes to stderr, and stdout gets the
outcome as JSON: the result when the execution is COMPLETED (exit 0), or the failure payload
(``{"error": ...}``) when it is FAILED (the command failed or died) or CANCELLED (exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from noetl.errors import EXIT_FAILURE, EXIT_OK, ConfigError
from noetl.settings import load_settings

SUMMARY = "submit one command of a tool kind (or a JSON/YAML file) to the server"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from noetl.tools.registry import KINDS  # the kinds' models bring pydantic: only for `submit`

    # Shared flags, accepted before or after the tool kind; SUPPRESS keeps a kind's parser from
    # overwriting a value given before the kind with its default.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--wait",
        action="store_true",
        default=argparse.SUPPRESS,
        help="wait for the outcome; print it as JSON; exit 0 COMPLETED, 1 FAILED or CANCELLED",
    )
    common.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="how long the tool may run (server default 300)",
    )
    common.add_argument(
        "--max-attempts",
        type=int,
        default=argparse.SUPPRESS,
        metavar="N",
        help="lost leases before the command is dead (server default 3)",
    )

    parser = subparsers.add_parser(
        "submit",
        parents=[common],
        help=f"submit a {', '.join(KINDS)} command (or a JSON/YAML file) to the server",
        description="Submit one command to the NoETL server at NOETL_SERVER_URL and print the execution id.",
    )
    parser.add_argument(
        "--file",
        type=Path,
        metavar="FILE",
        help='JSON or YAML: {"tool": {"kind": ...}, "timeout": 30, "max_attempts": 3}',
    )
    parser.set_defaults(handler=handle, kind=None)
    kinds = parser.add_subparsers(dest="kind", metavar="KIND")

    for kind in KINDS.values():
        kind.add_flags(kinds.add_parser(kind.KIND, parents=[common], help=kind.HELP))


def request_from_file(path: Path) -> dict[str, Any]:
    """Read a submit request from JSON or YAML (chosen by the suffix; JSON is also valid YAML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--file {str(path)!r}: cannot read it ({exc.strerror})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"--file {str(path)!r} is not valid JSON: {exc}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            reason = " ".join(str(exc).split())
            raise ConfigError(f"--file {str(path)!r} is not valid YAML: {reason}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tool"), dict) or "kind" not in data["tool"]:
        raise ConfigError(
            f'--file {str(path)!r}: expected an object like {{"tool": {{"kind": "shell", "command": "..."}}}}'
        )
    return data


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    if args.file is not None and args.kind is not None:
        raise ConfigError(f"give either --file or a tool kind ({args.kind}), not both")
    if args.file is not None:
        request = request_from_file(args.file)
    elif args.kind is not None:
        from noetl.tools.registry import KINDS

        request = {"tool": KINDS[args.kind].from_flags(args)}
    else:
        raise ConfigError(
            "say what to run: `noetl submit KIND ...` (kinds: `noetl submit --help`) or `--file FILE`"
        )
    if getattr(args, "timeout", None) is not None:
        request["timeout"] = args.timeout
    if getattr(args, "max_attempts", None) is not None:
        request["max_attempts"] = args.max_attempts
    return request


def handle(args: argparse.Namespace) -> int:
    from noetl.client import ApiClient

    request = build_request(args)
    settings = load_settings()
    with ApiClient.from_settings(settings) as client:
        submitted = client.submit(request)
        execution_id = submitted["execution_id"]
        if not getattr(args, "wait", False):
            print(execution_id)
            return EXIT_OK
        print(f"execution {execution_id}", file=sys.stderr)
        execution = client.wait(execution_id)
    return print_outcome(execution)


def print_outcome(execution: dict[str, Any]) -> int:
    """Print the outcome as JSON on stdout; 0 when COMPLETED, 1 otherwise (FAILED, CANCELLED)."""
    from noetl.client.format import clean

    command = execution["commands"][0]
    if execution["status"] == "COMPLETED":
        print(json.dumps(command.get("result")))
        return EXIT_OK
    failure = next(
        (e["payload"] for e in reversed(execution["events"]) if e["type"] == "failed"),
        {"error": command.get("error") or execution.get("error") or execution["status"]},
    )
    print(json.dumps(failure))
    print(
        clean(f"noetl: execution {execution['execution_id']} {execution['status']}: {failure.get('error')}"),
        file=sys.stderr,
    )
    return EXIT_FAILURE
