"""The `noetl` front door: parse arguments, call one function, map errors to exit codes.

Nothing but ``sys`` is imported before the command is known: `noetl --version` answers before
argparse (and the ``re``, ``gettext``, ``enum`` and ``typing`` it brings, ~10 ms) is loaded, and a
command imports its own module alone (see ``parser.build_parser``). `noetl ctl status [--json]`,
which scripts and probes run in loops, needs no parser either: argparse and the ctl parser (a
dozen subparsers, each looking for translations of its help) cost ~15 ms of its CPU.
"""

from __future__ import annotations

import sys

from noetl import __version__


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else list(argv)
    if args_list == ["--version"]:  # the one answer that needs no parser and no command module
        print(f"noetl {__version__}")
        return 0
    from noetl.errors import EXIT_CONFIG, NoetlError

    if args_list in (["ctl", "status"], ["ctl", "status", "--json"]):
        from noetl.cli.ctl import status

        try:
            return status({}, as_json=args_list[-1] == "--json")
        except NoetlError as exc:
            print(f"noetl: {exc}", file=sys.stderr)
            return exc.exit_code
    from noetl.cli.parser import build_parser

    command = next((arg for arg in args_list if not arg.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(args_list)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_CONFIG
    try:
        return int(handler(args) or 0)
    except NoetlError as exc:
        print(f"noetl: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
