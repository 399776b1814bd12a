"""The shell tool: a command string (run by /bin/sh -c) or an argv list, with optional env and cwd.

Result: ``{"exit_code", "stdout", "stderr"}``; output is captured up to ``OUTPUT_LIMIT`` bytes per
stream, with a visible marker when cut. A non-zero exit or a timeout is a failure carrying the
same fields as its output.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field

from noetl.protocol.types import Strict, Text
from noetl.tools.base import Outcome, ProcessResult, ToolContext, ToolError, run_process

KIND = "shell"


class Args(Strict):
    """What a shell command accepts (the server validates requests with it)."""

    kind: Literal["shell"]
    command: Annotated[Text, Field(min_length=1)] | Annotated[list[Text], Field(min_length=1)]
    env: dict[Text, Text] | None = None
    cwd: Text | None = None


def _argv(spec: Mapping[str, Any]) -> list[str]:
    command = spec.get("command")
    if isinstance(command, str) and command.strip():
        return ["/bin/sh", "-c", command]
    if isinstance(command, list) and command and all(isinstance(part, str) for part in command):
        return list(command)
    raise ToolError("shell tool: `command` must be a non-empty string or a list of strings")


def _env(spec: Mapping[str, Any], base: Mapping[str, str]) -> dict[str, str]:
    extra = spec.get("env") or {}
    if not isinstance(extra, Mapping):
        raise ToolError("shell tool: `env` must be an object of names to values")
    env = dict(base)
    for name, value in extra.items():
        if not isinstance(name, str) or not name or "=" in name or "\x00" in name:
            raise ToolError(f"shell tool: env name {name!r} is not a valid variable name")
        if value is None:
            env.pop(name, None)
            continue
        text = value if isinstance(value, str) else str(value)
        if "\x00" in text:
            raise ToolError(f"shell tool: env {name} contains a NUL character")
        env[name] = text
    return env


def _tail(text: str, limit: int = 200) -> str:
    """The last non-empty line of ``text``, shortened: enough to say why a command failed."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    return ": " + (last if len(last) <= limit else "..." + last[-limit:])


def _fields(done: ProcessResult) -> dict[str, Any]:
    return {
        "exit_code": done.exit_code,
        "stdout": done.stdout.shown(),
        "stderr": done.stderr.shown(),
    }


async def run(spec: Mapping[str, Any], ctx: ToolContext) -> Outcome:
    """Run the command; ``completed`` with its output when it exits 0, else ``failed``."""
    argv = _argv(spec)
    env = _env(spec, ctx.base_env)
    cwd = spec.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise ToolError("shell tool: `cwd` must be a directory path")
    if cwd and not os.path.isdir(cwd):
        raise ToolError(f"shell tool: cwd {cwd!r} is not an existing directory")
    done = await run_process(argv, timeout=ctx.timeout, env=env, cwd=cwd or None)
    fields = _fields(done)
    if done.timed_out:
        return Outcome(ok=False, error=f"timed out after {ctx.timeout:g}s: killed", output=fields)
    if done.exit_code != 0:
        code = done.exit_code if done.exit_code is not None else "?"
        if isinstance(code, int) and code < 0:
            return Outcome(ok=False, error=f"killed by signal {-code}", output=fields)
        why = _tail(done.stderr.text)
        return Outcome(ok=False, error=f"exited with code {code}{why}", output=fields)
    return Outcome(ok=True, result=fields)
