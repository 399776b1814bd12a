"""The noop tool: returns its ``input`` as the result; nothing runs.

In a playbook the engine finishes a ``noop`` step at once on the server, without a command; a
``noop`` task of a task list, or a ``noetl submit noop``, runs here on a worker.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any, Literal

from noetl.protocol.types import JsonObject, Strict
from noetl.tools.base import Outcome, ToolContext
from noetl.tools.flags import parse_pairs, parse_value

KIND = "noop"
HELP = "return the input as the result (nothing runs)"


class Args(Strict):
    """What a noop command accepts; the server validates requests and the worker runs them with it."""

    kind: Literal["noop"]
    input: JsonObject | None = None


def add_flags(parser: argparse.ArgumentParser) -> None:
    """``noetl submit noop`` flags."""
    parser.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an input key; VALUE is parsed as JSON when it parses, else kept as text (repeat)",
    )


def from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The ``tool`` object that ``noetl submit noop`` sends."""
    tool: dict[str, Any] = {"kind": KIND}
    if args.input:
        tool["input"] = {key: parse_value(value) for key, value in parse_pairs(args.input, "--input")}
    return tool


def describe(tool: Mapping[str, Any]) -> str:
    """One line for `noetl status`."""
    keys = ", ".join(sorted((tool.get("input") or {}).keys()))
    return f"noop: {keys}" if keys else "noop"


async def run(args: Args, ctx: ToolContext) -> Outcome:
    """The input, as it came."""
    del ctx
    return Outcome(ok=True, result=dict(args.input or {}))
