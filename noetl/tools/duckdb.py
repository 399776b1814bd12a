"""The duckdb tool: ``query`` (one or more SQL statements separated by ``;``) against ``database``
(``":memory:"``, the default, or a file path) -> the rows of the last statement as a list of
objects (``[{"name": "Alice", "age": 30}]``).

It runs in a process of its own (``duckdb_runner``), forked like the python tool's from a warm
template (``warm``) that has the ``duckdb`` module imported already, so a crash or a runaway query
never takes the worker with it and a timeout kills it. The template starts with the worker's first
duckdb command (importing duckdb takes about half a second) and serves the next ones at once. Dates
and times come back as ISO strings, decimals as numbers, blobs as text. The ``duckdb`` package is
the extra ``noetl[duckdb]``: without it a playbook that uses this kind is refused at registration.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from noetl.protocol.types import NonBlank, Strict, Text
from noetl.tools.base import Outcome, ToolContext
from noetl.tools.child import died, run_child

KIND = "duckdb"
HELP = "run SQL in DuckDB; the rows of the last statement"
# Said when the extra is missing (registration refuses the playbook with it).
EXTRA = "the duckdb tool needs the duckdb extra: pip install 'noetl[duckdb]'"
_RUNNER = Path(__file__).with_name("duckdb_runner.py")


class Args(Strict):
    """What a duckdb command accepts; the server validates requests and the worker runs them with it."""

    kind: Literal["duckdb"]
    query: NonBlank
    database: Text = ":memory:"


def installed() -> bool:
    """Whether the ``duckdb`` package can be imported here."""
    return importlib.util.find_spec("duckdb") is not None


def add_flags(parser: argparse.ArgumentParser) -> None:
    """``noetl submit duckdb`` flags."""
    parser.add_argument("--query", required=True, help="SQL; several statements separated by ;")
    parser.add_argument("--database", default=":memory:", help="a database file (default: in memory)")


def from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The ``tool`` object that ``noetl submit duckdb`` sends."""
    return {"kind": KIND, "query": args.query, "database": args.database}


def describe(tool: Mapping[str, Any]) -> str:
    """One line for `noetl status`: the database and the first line of the query."""
    first = next(iter(str(tool.get("query", "")).strip().splitlines()), "")
    return f"duckdb {tool.get('database', ':memory:')}: {first}"


async def run(args: Args, ctx: ToolContext) -> Outcome:
    """Run the statements; ``completed`` with the last one's rows, else ``failed`` with DuckDB's
    message."""
    request = {"query": args.query, "database": args.database}
    preload = ["duckdb"] if installed() else []
    done, answer = await run_child(_RUNNER, request, ctx, "noetl-duckdb-", preload, "the duckdb extra")
    if done.timed_out:
        return Outcome(ok=False, error=f"timed out after {ctx.timeout:g}s: killed")
    if answer is None:
        output = {"stderr": done.stderr.shown()} if done.stderr.text else None
        return Outcome(ok=False, error=f"the duckdb process {died(done)} before answering", output=output)
    if "error" in answer:
        return Outcome(ok=False, error=str(answer["error"]))
    return Outcome(ok=True, result=answer.get("rows"))
