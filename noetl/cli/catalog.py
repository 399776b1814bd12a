"""`noetl catalog register|list|get`: the server's playbook catalog."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from noetl.errors import EXIT_OK
from noetl.settings import load_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "catalog",
        help="register, list and read playbooks in the catalog",
        description="The playbook catalog of the server at NOETL_SERVER_URL.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    reg = actions.add_parser(
        "register", help="register a playbook file (same as `noetl register playbook -f`)"
    )
    reg.add_argument("file", type=Path, metavar="FILE", help="the playbook (YAML)")
    reg.set_defaults(handler=handle_register)

    listing = actions.add_parser("list", help="the latest version of every playbook")
    listing.add_argument("--json", action="store_true", help="print the server's JSON")
    listing.set_defaults(handler=handle_list)

    get = actions.add_parser("get", help="print a playbook's content (the latest version by default)")
    get.add_argument("path", metavar="PATH", help="the playbook's catalog path (metadata.path)")
    get.add_argument("--version", type=int, metavar="N", help="this version instead of the latest")
    get.add_argument("--json", action="store_true", help="print the entry as JSON, content included")
    get.set_defaults(handler=handle_get)


def handle_register(args: argparse.Namespace) -> int:
    from noetl.cli.register import register_files

    return register_files([args.file])


def handle_list(args: argparse.Namespace) -> int:
    from noetl.client import ApiClient
    from noetl.client.format import catalog_table

    with ApiClient.from_settings(load_settings()) as client:
        entries = client.catalog()
    print(json.dumps({"entries": entries}, indent=2) if args.json else catalog_table(entries))
    return EXIT_OK


def handle_get(args: argparse.Namespace) -> int:
    from noetl.client import ApiClient

    with ApiClient.from_settings(load_settings()) as client:
        entry = client.catalog_entry(args.path, args.version)
    if args.json:
        print(json.dumps(entry, indent=2))
    else:
        print(entry["content"], end="" if entry["content"].endswith("\n") else "\n")
    return EXIT_OK
