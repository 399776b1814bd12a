"""The tool kinds, one module each, and the one entry point that runs a command's tool: ``run_tool``.

A kind module declares everything about its kind (see ``ToolKind``): the ``Args`` model that the
server validates a request with and the worker validates again before running it (so the two can
never disagree about what a kind accepts), ``run``, its ``noetl submit`` flags and how it prints.
Adding a kind is one module and one entry in ``_MODULES``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Annotated, Any, Protocol, cast

from pydantic import Field, ValidationError

from noetl.protocol.types import Strict, describe_validation
from noetl.tools import duckdb, http, noop, policy, python, shell, tasks
from noetl.tools.base import Outcome, ToolContext, ToolError

__all__ = [
    "KINDS",
    "TOOL_KINDS",
    "Outcome",
    "Tool",
    "ToolContext",
    "ToolError",
    "missing_extra",
    "run_tool",
    "tool_spec",
]

log = logging.getLogger("noetl.worker")


class ToolKind(Protocol):
    """What a kind module provides."""

    KIND: str
    HELP: str  # one line for `noetl submit --help`
    Args: type[Strict]

    def run(self, args: Any, ctx: ToolContext, /) -> Awaitable[Outcome]: ...
    def add_flags(self, parser: argparse.ArgumentParser, /) -> None: ...
    def from_flags(self, args: argparse.Namespace, /) -> dict[str, Any]: ...
    def describe(self, tool: Mapping[str, Any], /) -> str: ...


_MODULES = (shell, python, http, noop, duckdb, tasks)
KINDS: dict[str, ToolKind] = {module.KIND: cast(ToolKind, module) for module in _MODULES}
TOOL_KINDS = tuple(KINDS)
# The ``tool`` of a request: one of the kinds' argument models, chosen by ``kind``.
Tool = Annotated[
    shell.Args | python.Args | http.Args | noop.Args | duckdb.Args | tasks.Args, Field(discriminator="kind")
]

# Extra time a tool gets past the command's timeout to kill its children and report on its own.
_GUARD_GRACE = 5.0


def tool_spec(tool: Strict) -> dict[str, Any]:
    """The tool as stored and handed to workers: the fields the client gave, as the kind reads them."""
    spec = tool.model_dump(by_alias=True, exclude_unset=True, mode="json")
    spec["kind"] = getattr(tool, "kind")  # noqa: B009 - every kind's Args has it; Strict does not
    return spec


def parse_tool(tool: Any) -> tuple[ToolKind, Strict]:
    """The kind and its validated arguments; ``ToolError`` (one line) when the tool is not valid.
    A playbook's ``spec`` (the policy) is checked here and left out of the arguments
    (``policy_rules`` reads it)."""
    if not isinstance(tool, Mapping):
        raise ToolError("the command's `tool` must be an object with a `kind`")
    if "spec" in tool:
        policy_rules(tool)
        tool = {key: value for key, value in tool.items() if key != "spec"}
    name = tool.get("kind")
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise ToolError(f"unknown tool kind {name!r}; expected one of: {', '.join(KINDS)}")
    try:
        return kind, kind.Args.model_validate(tool)
    except ValidationError as exc:
        raise ToolError(f"{kind.KIND} tool: {describe_validation(exc.errors())}") from None


def missing_extra(kind: str) -> str | None:
    """One line naming the extra to install when ``kind`` needs a package that is not here."""
    if kind == duckdb.KIND and not duckdb.installed():
        return duckdb.EXTRA
    return None


def policy_rules(tool: Mapping[str, Any]) -> tuple[policy.Rule, ...]:
    """The rules of the tool's ``spec.policy``; () without one; ToolError when they are not valid."""
    try:
        return policy.rules_of(tool.get("spec"), "spec")
    except policy.PolicyError as exc:
        raise ToolError(str(exc)) from None


def describe(tool: Mapping[str, Any]) -> str:
    """One line about a stored tool, for people."""
    kind = KINDS.get(str(tool.get("kind")))
    return kind.describe(tool) if kind is not None else str(tool.get("kind", "?"))


async def attempt(kind: ToolKind, args: Strict, ctx: ToolContext) -> Outcome:
    """One run of a tool: a ToolError is a failed outcome."""
    try:
        return await kind.run(args, ctx)
    except ToolError as exc:
        return Outcome(ok=False, error=str(exc), output=exc.output)


def attempts_within(kind: ToolKind, args: Strict, ctx: ToolContext) -> Callable[[], Awaitable[Outcome]]:
    """Runs of one tool that share ``ctx.timeout``: each attempt gets what is left of it; with
    nothing left, ``policy.NoTimeLeft`` ends the attempts."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.timeout

    async def once() -> Outcome:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise policy.NoTimeLeft(f"no time left of the command's {ctx.timeout:g}s for another attempt")
        return await attempt(kind, args, replace(ctx, timeout=remaining))

    return once


async def run_with_policy(
    kind: ToolKind, args: Strict, ctx: ToolContext, rules: tuple[policy.Rule, ...]
) -> Outcome:
    """Run a single tool (not a task of a list) under its policy, every attempt within the
    command's time: the outcome carries the policy's context writes and the retried attempts.
    Its rules see ``output`` and ``attempt``."""
    applied = await policy.run(attempts_within(kind, args, ctx), rules, {}, "spec", None)
    return replace(applied.outcome, ctx=applied.writes or None, retries=tuple(applied.retries))


async def run_tool(tool: Any, ctx: ToolContext) -> Outcome:
    """Run the ``tool`` object of a command. Never raises for the tool's sake: every problem,
    including a bug in a tool, is an ``Outcome`` with ``ok=False`` and a readable error.
    Cancellation goes through (the tool kills its processes first)."""
    try:
        kind, args = parse_tool(tool)
        rules = policy_rules(tool)
        if not rules:
            return await asyncio.wait_for(kind.run(args, ctx), ctx.timeout + _GUARD_GRACE)
        return await asyncio.wait_for(run_with_policy(kind, args, ctx, rules), ctx.timeout + _GUARD_GRACE)
    except ToolError as exc:
        return Outcome(ok=False, error=str(exc), output=exc.output)
    except TimeoutError:
        return Outcome(ok=False, error=f"timed out after {ctx.timeout:g}s")
    except Exception as exc:  # a bug in a tool must fail the command, not the worker
        log.exception("%s tool raised", tool.get("kind") if isinstance(tool, Mapping) else "?")
        return Outcome(ok=False, error=f"tool failed unexpectedly: {type(exc).__name__}: {exc}")
