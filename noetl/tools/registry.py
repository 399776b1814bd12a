"""The tools a command can use, one module per kind, behind one entry point: ``run_tool``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from pydantic import Field

from noetl.tools import http, python, shell
from noetl.tools.base import Outcome, ToolContext, ToolError

__all__ = ["KINDS", "Outcome", "Tool", "ToolContext", "ToolError", "run_tool", "tool_spec"]

log = logging.getLogger("noetl.worker")

Runner = Callable[[Mapping[str, Any], ToolContext], Awaitable[Outcome]]
KINDS: dict[str, Runner] = {"shell": shell.run, "python": python.run, "http": http.run}
TOOL_KINDS = tuple(KINDS)
# The ``tool`` of a request: one of the kinds' argument models, chosen by ``kind``.
Tool = Annotated[shell.Args | python.Args | http.Args, Field(discriminator="kind")]


def tool_spec(tool: shell.Args | python.Args | http.Args) -> dict[str, Any]:
    """The tool as stored and handed to workers: exactly the fields the client gave."""
    spec = tool.model_dump(by_alias=True, exclude_unset=True)
    spec["kind"] = tool.kind
    if isinstance(tool, http.Args):
        spec["method"] = tool.method.upper()
    return spec


# Extra time a tool gets past the command's timeout to kill its children and report on its own.
_GUARD_GRACE = 5.0


async def run_tool(tool: Any, ctx: ToolContext) -> Outcome:
    """Run the ``tool`` object of a command. Never raises for the tool's sake: every problem,
    including a bug in a tool, is an ``Outcome`` with ``ok=False`` and a readable error.
    Cancellation goes through (the tool kills its processes first)."""
    if not isinstance(tool, Mapping):
        return Outcome(ok=False, error="the command's `tool` must be an object with a `kind`")
    kind = tool.get("kind")
    run = KINDS.get(kind) if isinstance(kind, str) else None
    if run is None:
        return Outcome(ok=False, error=f"unknown tool kind {kind!r}; expected one of: {', '.join(KINDS)}")
    try:
        return await asyncio.wait_for(run(tool, ctx), ctx.timeout + _GUARD_GRACE)
    except ToolError as exc:
        return Outcome(ok=False, error=str(exc), output=exc.output)
    except TimeoutError:
        return Outcome(ok=False, error=f"timed out after {ctx.timeout:g}s")
    except Exception as exc:  # a bug in a tool must fail the command, not the worker
        log.exception("%s tool raised", kind)
        return Outcome(ok=False, error=f"{kind} tool failed unexpectedly: {type(exc).__name__}: {exc}")
