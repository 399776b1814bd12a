"""The tasks tool: a playbook step's list of tasks, run in order on one worker.

The engine dispatches a step whose ``tool`` is a list as one command of this kind: the tasks as
written (workbook calls already resolved), the step's rendered ``input``, and the ``scope`` the
templates see. Each task is made ready just before it runs (``noetl.engine.calls``), so its
templates see the earlier tasks' results by their names; then it runs as its own kind would. The
first failure fails the whole list, naming the task; the result is the last task's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from noetl.errors import ConfigError
from noetl.protocol.types import JsonObject, Strict
from noetl.tools import policy
from noetl.tools.base import Outcome, ToolContext, ToolError
from noetl.tools.flags import parse_pairs, parse_value

KIND = "tasks"
# Task runs one command may make, jumps included: more means a jump cycle.
MAX_TASK_RUNS = 1000
# Scope words of a context key (``ctx.key`` writes ``key``).
_SCOPES = ("ctx.", "iter.", "step.")
HELP = "run a list of tasks in order, later ones seeing earlier results (a playbook step's tool list)"


def _tasks(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    for i, task in enumerate(tasks):
        name, kind = task.get("name"), task.get("kind")
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"tasks[{i}].name: a name made of letters, digits and _ is required")
        if name in seen:
            raise ValueError(f"tasks[{i}].name: a second task named {name!r}")
        seen.add(name)
        if not isinstance(kind, str) or not kind or kind == KIND:
            raise ValueError(f"tasks[{i}].kind: the kind of a single tool is required")
    return tasks


def _scope(scope: dict[str, Any]) -> dict[str, Any]:
    unknown = set(scope) - {"execution_id", "workload", "ctx", "results", "not_run", "loop"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
    return scope


class Args(Strict):
    """What a tasks command accepts; the server validates requests and the worker runs them with it."""

    kind: Literal["tasks"]
    tasks: Annotated[list[JsonObject], Field(min_length=1), AfterValidator(_tasks)]
    # The step's input, rendered on the server: given to every task.
    input: JsonObject | None = None
    # What the templates see: {execution_id, workload, ctx, results, not_run, loop}; ``loop``: an
    # iteration's names (the iterator, ``iter``, ``loop_index``).
    scope: Annotated[JsonObject, AfterValidator(_scope)] | None = None


def add_flags(parser: argparse.ArgumentParser) -> None:
    """``noetl submit tasks`` flags."""
    parser.add_argument(
        "--task",
        action="append",
        required=True,
        metavar="JSON",
        help='a task: {"name", "kind", ...} (repeat)',
    )
    parser.add_argument(
        "--input", action="append", default=[], metavar="KEY=VALUE", help="input given to every task (repeat)"
    )


def from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The ``tool`` object that ``noetl submit tasks`` sends."""
    tasks = []
    for text in args.task:
        try:
            tasks.append(json.loads(text))
        except ValueError as exc:
            raise ConfigError(f"--task is not valid JSON: {exc}") from None
    tool: dict[str, Any] = {"kind": KIND, "tasks": tasks}
    if args.input:
        tool["input"] = {key: parse_value(value) for key, value in parse_pairs(args.input, "--input")}
    return tool


def describe(tool: Mapping[str, Any]) -> str:
    """One line for `noetl status`: the tasks by name and kind."""
    tasks = tool.get("tasks") or []
    return "tasks: " + ", ".join(
        f"{t.get('name')} ({t.get('kind')})" for t in tasks if isinstance(t, Mapping)
    )


async def run(args: Args, ctx: ToolContext) -> Outcome:
    """Run the tasks in order within the command's time, each under its policy (retry, continue,
    fail, break, jump); the result is the last task's that ran. The outcome carries the
    policies' context writes and retried attempts."""
    # Imported here: the registry imports this module, and the engine's calls module renders templates.
    from noetl.engine import calls, templates
    from noetl.tools.registry import attempts_within, parse_tool, policy_rules

    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.timeout
    frame: dict[str, Any] = {"execution_id": "", "workload": {}, "ctx": {}, "results": {}, "not_run": []}
    frame.update(args.scope or {})
    loop_vars = frame.pop("loop", None) or {}
    frame["ctx"] = dict(frame["ctx"])
    results = dict(frame["results"])
    done: list[str] = []
    writes: dict[str, Any] = {}
    retries: list[dict[str, Any]] = []
    result: Any = None
    names = [task["name"] for task in args.tasks]
    position, steps_taken = 0, 0

    def ended(outcome: Outcome) -> Outcome:
        return replace(outcome, ctx=writes or None, retries=tuple(retries))

    while position < len(args.tasks):
        steps_taken += 1
        if steps_taken > MAX_TASK_RUNS:
            return ended(Outcome(ok=False, error=f"more than {MAX_TASK_RUNS} task runs (a jump cycle?)"))
        task = args.tasks[position]
        name = task["name"]
        spec = {key: value for key, value in task.items() if key not in ("name", "assert")}
        checks = task.get("assert") or {}
        now = {**frame, "results": results, "not_run": [n for n in frame["not_run"] if n not in results]}
        # NoETL's pipeline names: the previous task's result, its name, and this list's results.
        pipeline = {**loop_vars, "_prev": result, "_task": done[-1] if done else None, "_attempt": 1}
        pipeline["results"] = {n: results[n] for n in done}
        scope = templates.make_scope(**now, extra=pipeline)
        try:
            call = calls.prepare(
                spec, scope, args.input or {}, {**now, "loop": loop_vars}, where=f"task '{name}'"
            )
        except templates.TemplateError as exc:
            raise ToolError(str(exc), output={"done": done}) from None
        except calls.CallError as exc:
            raise ToolError(f"task '{name}': {exc}", output={"done": done}) from None
        missing = [key for key in checks.get("expects", ()) if key not in call.input]
        if missing:
            raise ToolError(
                f"task '{name}': assert.expects: no input key '{missing[0]}'", output={"done": done}
            )
        jump: str | None = None
        if call.tool is None:
            result = call.input
        else:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ToolError(
                    f"task '{name}': no time left of the command's {ctx.timeout:g}s", output={"done": done}
                )
            task_ctx = ToolContext(timeout=remaining, base_env=ctx.base_env)
            try:
                kind, parsed = parse_tool(call.tool)  # checked already: this only reads it
                rules = policy_rules(call.tool)
            except ToolError as exc:
                return ended(Outcome(ok=False, error=f"task '{name}': {exc}", output={"done": done}))
            applied = await policy.run(
                attempts_within(kind, parsed, task_ctx), rules, scope, f"task '{name}': spec", name
            )
            outcome = applied.outcome
            retries.extend(applied.retries)
            for key, value in applied.writes.items():
                writes[key] = value
                frame["ctx"][key.partition(".")[2] if key.startswith(_SCOPES) else key] = value
            if not outcome.ok:
                output = {"done": done, "task": name, "output": dict(outcome.output or {})}
                return ended(Outcome(ok=False, error=f"task '{name}': {outcome.error}", output=output))
            result = outcome.result
            if applied.stop:
                results[name] = result
                return ended(Outcome(ok=True, result=result))
            jump = applied.jump
        for key in checks.get("returns", ()):
            if not isinstance(result, dict) or key not in result:
                raise ToolError(
                    f"task '{name}': assert.returns: the result has no key '{key}'", output={"done": done}
                )
        results[name] = result
        done.append(name)
        if jump is not None:
            if jump not in names:
                return ended(Outcome(ok=False, error=f"task '{name}': jump: no task named '{jump}'"))
            position = names.index(jump)
        else:
            position += 1
    return ended(Outcome(ok=True, result=result))
