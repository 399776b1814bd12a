"""`noetl register playbook -f FILE | -d DIR`: validate and store playbooks in the server's catalog."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from noetl.errors import EXIT_CONFIG, EXIT_OK, ConfigError, NoetlError
from noetl.settings import load_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "register",
        help="register playbooks in the catalog (validated by the server)",
        description="Register playbooks with the server at NOETL_SERVER_URL. A playbook that cannot run "
        "is refused with one line naming the step and the key (exit 2).",
    )
    kinds = parser.add_subparsers(dest="resource", metavar="RESOURCE")
    playbook = kinds.add_parser(
        "playbook", help="a playbook file, or every .yaml/.yml file below a directory"
    )
    source = playbook.add_mutually_exclusive_group(required=True)
    source.add_argument("-f", "--file", type=Path, metavar="FILE", help="one playbook file")
    source.add_argument("-d", "--dir", type=Path, metavar="DIR", help="every .yaml/.yml file below DIR")
    playbook.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from noetl.cli.playbook_files import playbooks_in

    files = [args.file] if args.file is not None else playbooks_in(args.dir)
    return register_files(files)


def register_files(files: list[Path]) -> int:
    """Register each file, one line each; a refused file is reported and the others still go."""
    from noetl.cli.playbook_files import read_text
    from noetl.client import ApiClient

    refused = 0
    with ApiClient.from_settings(load_settings()) as client:
        for path in files:
            text = read_text(path, "-f")
            try:
                entry = client.register(text)
            except NoetlError as exc:
                if exc.exit_code != EXIT_CONFIG:  # the server is away: not this file's fault
                    raise
                if len(files) == 1:
                    raise ConfigError(f"{path}: {exc}") from None
                print(f"noetl: {path}: {exc}", file=sys.stderr)
                refused += 1
                continue
            print(f"{path}: {entry['message']} (catalog_id {entry['catalog_id']})")
    return EXIT_CONFIG if refused else EXIT_OK
