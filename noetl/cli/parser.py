"""The `noetl` argument parser: every command's, or one command's alone.

Each command lives in its own module under ``noetl.cli`` and exposes ``register(subparsers)``;
heavy libraries (fastapi, nats, asyncpg, docker, kubernetes) are imported only inside the handler
that needs them, so `noetl ctl status` stays fast.
"""

from __future__ import annotations

import argparse
import importlib

from noetl import __version__

# The command modules, in the order `noetl --help` lists them.
COMMANDS: tuple[str, ...] = (
    "run",
    "ctl",
    "config",
    "server",
    "worker",
    "submit",
    "register",
    "catalog",
    "exec",
    "status",
    "cancel",
    "db",
    "build",
    "k8s",
)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand, or with ``only`` that one (its module alone is imported,
    so a fast command does not pay for the imports of the others: a tool kind's flags bring pydantic)."""
    parser = argparse.ArgumentParser(
        prog="noetl",
        description="NoETL runtime: run the API server and workers under supervision, and drive them.",
        epilog="Settings come from NOETL_*, POSTGRES_* and NATS_URL; see `noetl config check --help`.",
    )
    parser.add_argument("--version", action="version", version=f"noetl {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (only,) if only in COMMANDS else COMMANDS:
        module = importlib.import_module(f"noetl.cli.{name}")
        if only is None and hasattr(module, "SUMMARY"):
            # Listed by its summary alone: its flags cost imports that `noetl --help` need not pay.
            subparsers.add_parser(name, help=module.SUMMARY, add_help=False)
        else:
            module.register(subparsers)
    return parser
