"""One tool call of a step, made ready for a worker: its input merged and every template rendered.

The server's engine does this for a step's tool; the worker's ``tasks`` kind does the same for the
tasks of a list, just before each one runs, so that later tasks see the earlier ones' results.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from noetl.engine import templates

# Keys of a tool mapping that make its input instead of being passed on.
INPUT_KEYS = ("args", "input")
# The tool's policy: passed on as written; the worker renders its rules after each attempt.
POLICY_KEY = "spec"
# Kinds that are given their merged input as ``input`` (the others see it in templates only).
INPUT_KINDS = ("python", "noop")


class CallError(ValueError):
    """The rendered tool is not one its kind accepts; the message is the kind's one line."""


@dataclass(frozen=True)
class Call:
    """``tool`` for the worker, or None for a ``noop``, whose result is its ``input``."""

    tool: dict[str, Any] | None
    input: dict[str, Any]


def prepare(
    spec: Mapping[str, Any],
    scope: Mapping[str, Any],
    step_input: Mapping[str, Any],
    frame: Mapping[str, Any],
    where: str = "tool",
) -> Call:
    """Merge the input (the tool's own ``args``, then ``tool.input``, then the step's rendered
    ``input``), render the tool's other fields with the merged input visible as ``input``, and give
    python code that names ``context`` the plain scope (``frame``) as its read-only ``context``.
    Raises TemplateError naming ``where`` and the key, or CallError when the kind refuses the
    rendered tool."""
    kind = str(spec["kind"])
    raw_input = {**(spec.get("args") or {}), **(spec.get("input") or {})}
    tool_input = {**templates.render(raw_input, scope, f"{where}.input"), **step_input}
    if kind == "noop":
        return Call(tool=None, input=tool_input)
    rest = {key: value for key, value in spec.items() if key not in (*INPUT_KEYS, "kind", POLICY_KEY)}
    tool: dict[str, Any] = {"kind": kind, **templates.render(rest, {**scope, "input": tool_input}, where)}
    if tool_input and kind in INPUT_KINDS:
        tool["input"] = tool_input
    if kind == "python" and "context" in str(tool.get("code", "")):
        # Only code that names `context` gets it: it holds every finished step's result.
        tool["context"] = templates.plain_scope(**frame)
    checked = _checked(tool)
    if POLICY_KEY in spec:
        checked[POLICY_KEY] = spec[POLICY_KEY]
    return Call(tool=checked, input=tool_input)


def _checked(tool: dict[str, Any]) -> dict[str, Any]:
    """The tool as its kind reads it (``POST`` for ``post``), or CallError: a rendered value the
    kind refuses fails the step here, before any command is stored."""
    # Imported here: the registry imports the tasks kind, which imports this module.
    from noetl.tools.registry import ToolError, parse_tool, tool_spec

    try:
        _, args = parse_tool(tool)
    except ToolError as exc:
        raise CallError(str(exc)) from None
    return tool_spec(args)
