"""The python tool: ``code`` -> the JSON-serialisable value the code assigns to ``result``.

As in NoETL playbooks, each key of ``args`` and ``input`` is a global of the code, ``input_data``
holds them all, ``context`` is a read-only mapping of what the playbook's templates see, and
``libs`` (alias -> module) are imported first; a top-level ``return`` sets the result, and a ``main``
is called when the code defines one and sets no ``result`` (see ``python_runner``). The code runs
in a process of its own, forked from the worker's warm python template (``warm``), in its own
process group, so a timeout, a crash or an ``exit()`` fails the command and never the worker.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator

from noetl.protocol.types import JsonObject, JsonValue, NonBlank, Strict
from noetl.tools.base import Outcome, ToolContext
from noetl.tools.child import died, run_child
from noetl.tools.flags import parse_pairs, parse_value
from noetl.tools.python_warm import RUNNER as _RUNNER

KIND = "python"
HELP = "run Python code"


def _identifiers(args: dict[str, Any]) -> dict[str, Any]:
    bad = [key for key in args if not key.isidentifier()]
    if bad:
        raise ValueError(f"keys must be Python identifiers, not {bad[0]!r}")
    return args


def _modules(libs: dict[str, str]) -> dict[str, str]:
    _identifiers(libs)
    bad = [name for name in libs.values() if not all(part.isidentifier() for part in name.split("."))]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a module's import path")
    return libs


Variables = Annotated[dict[str, JsonValue], AfterValidator(_identifiers)]


class Args(Strict):
    """What a python command accepts; the server validates requests and the worker runs them with it."""

    kind: Literal["python"]
    code: NonBlank
    # Variables of the code's namespace: `args` (as `noetl submit` sends them), then a playbook's `input`.
    args: Variables | None = None
    input: Variables | None = None
    # What the playbook's templates see, read-only in the code.
    context: JsonObject | None = None
    # alias -> module, imported before the code runs: {"pd": "pandas"}.
    libs: Annotated[dict[str, str], AfterValidator(_modules)] | None = None


def add_flags(parser: argparse.ArgumentParser) -> None:
    """``noetl submit python`` flags."""
    parser.add_argument("--code", required=True, help="the code")
    parser.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="argument; VALUE is parsed as JSON when it parses, else kept as text (repeat)",
    )


def from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The ``tool`` object that ``noetl submit python`` sends."""
    tool: dict[str, Any] = {"kind": KIND, "code": args.code}
    if args.arg:
        tool["args"] = {key: parse_value(value) for key, value in parse_pairs(args.arg, "--arg")}
    return tool


def describe(tool: Mapping[str, Any]) -> str:
    """One line for `noetl status`: the first line of the code."""
    first = next(iter(str(tool.get("code", "")).strip().splitlines()), "")
    return f"python: {first}"


def _request(args: Args) -> dict[str, Any]:
    return {
        "code": args.code,
        "args": args.args or {},
        "input": args.input or {},
        "context": args.context or {},
        "libs": args.libs or {},
    }


async def run(args: Args, ctx: ToolContext) -> Outcome:
    """Run the code; ``completed`` with ``result`` (and the code's prints), else ``failed``."""
    done, answer = await run_child(_RUNNER, _request(args), ctx, "noetl-python-")
    prints = {"stdout": done.stdout.shown(), "stderr": done.stderr.shown()}
    if done.timed_out:
        return Outcome(ok=False, error=f"timed out after {ctx.timeout:g}s: killed", output=prints)
    if answer is None:
        return Outcome(
            ok=False, error=f"the python process {died(done)} before giving a result", output=prints
        )
    if "error" in answer:
        return Outcome(ok=False, error=str(answer["error"]), output=prints)
    printed = bool(done.stdout.text or done.stderr.text)
    return Outcome(ok=True, result=answer.get("result"), output=prints if printed else None)
