"""The `noetl` front door: parse arguments, call one function, map errors to exit codes.

Nothing but ``sys`` is imported before the command is known: `noetl --version` answers before
argparse (and the ``re``, ``gettext``, ``enum`` and ``typing`` it brings, ~10 ms) is loaded, and a
command imports its own module alone (see ``parser.build_parser``).
"""

from __future__ import annotations

import sys

from noetl import __version__


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else list(argv)
    if args_list == ["--version"]:  # the one answer that needs no parser and no command module
        print(f"noetl {__version__}")
        return 0
    from noetl.cli.parser import build_parser
    from noetl.errors import EXIT_CONFIG, NoetlError

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
