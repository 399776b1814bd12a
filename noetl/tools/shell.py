"""The shell tool: a command string (run by /bin/sh -c), an argv list, or ``cmds`` (a list of
command lines run in order by one /bin/sh, stopping at the first that fails), with optional
``env``, ``cwd`` and ``timeout_seconds``.

Result: ``{"exit_code", "stdout", "stderr"}``; output is captured up to ``OUTPUT_LIMIT`` bytes per
stream, with a visible marker when cut. A non-zero exit or a timeout is a failure carrying the
same fields as its output.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator

from noetl.protocol.types import Seconds, Strict, Text
from noetl.tools.base import Outcome, ProcessResult, ToolContext, ToolError, run_process
from noetl.tools.flags import parse_pairs

KIND = "shell"
HELP = "run a shell command"


def _env_name(name: str) -> str:
    if not name or "=" in name or "\x00" in name:
        raise ValueError(f"{name!r} is not a valid variable name")
    return name


EnvName = Annotated[str, AfterValidator(_env_name)]


def _command(value: Any) -> Any:
    """Checked whole, so that a mistake reads as one line rather than one per branch of the union."""
    if value is None:
        return value  # `cmds` instead (checked with it)
    parts = [value] if isinstance(value, str) else value
    if not isinstance(parts, list) or not parts or not all(isinstance(part, str) for part in parts):
        raise ValueError("must be a non-empty string or a list of strings")
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty")
    if any("\x00" in part for part in parts):
        raise ValueError("must not contain NUL characters")
    return value


def _cmds(value: Any) -> Any:
    lines = value if isinstance(value, list) else []
    if not lines or not all(isinstance(line, str) and line.strip() for line in lines):
        raise ValueError("must be a non-empty list of command lines")
    if any("\x00" in line for line in value):
        raise ValueError("must not contain NUL characters")
    return value


class Args(Strict):
    """What a shell command accepts; the server validates requests and the worker runs them with it."""

    kind: Literal["shell"]
    # Command lines run in order by one /bin/sh (NoETL's spelling); the first failure stops them.
    cmds: Annotated[list[str], BeforeValidator(_cmds)] | None = None
    # A string runs with /bin/sh -c; a list is the argv itself. Exactly one of `command`, `cmds`.
    command: Annotated[str | list[str] | None, BeforeValidator(_command)] = Field(None, validate_default=True)
    # Added to the worker's environment for tools; a null value removes that variable.
    env: dict[EnvName, Text | int | float | bool | None] | None = None
    cwd: Annotated[Text, Field(min_length=1)] | None = None
    # Never longer than the command's own timeout.
    timeout_seconds: Seconds | None = None

    @field_validator("command", mode="after")
    @classmethod
    def _one_command(cls, value: Any, info: ValidationInfo) -> Any:
        # `cmds` is declared first, so it is known here (absent when it was invalid).
        if (value is None) == (info.data.get("cmds") is None) and "cmds" in info.data:
            raise ValueError("give `command` or `cmds`, one of them")
        return value


def add_flags(parser: argparse.ArgumentParser) -> None:
    """``noetl submit shell`` flags."""
    parser.add_argument("--command", required=True, help="the command line")
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="environment (repeat)"
    )
    parser.add_argument("--cwd", help="working directory")


def from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The ``tool`` object that ``noetl submit shell`` sends."""
    tool: dict[str, Any] = {"kind": KIND, "command": args.command}
    if args.env:
        tool["env"] = dict(parse_pairs(args.env, "--env"))
    if args.cwd:
        tool["cwd"] = args.cwd
    return tool


def describe(tool: Mapping[str, Any]) -> str:
    """One line for `noetl status`."""
    command = tool.get("command")
    if command is None and isinstance(tool.get("cmds"), list):
        return "shell: " + "; ".join(str(line) for line in tool["cmds"])
    return "shell: " + (" ".join(command) if isinstance(command, list) else str(command))


def _argv(args: Args) -> list[str]:
    if args.cmds is not None:
        # `set -e`: the first line that fails stops the rest, and its exit code is the result's.
        return ["/bin/sh", "-c", "set -e\n" + "\n".join(args.cmds)]
    if isinstance(args.command, str):
        return ["/bin/sh", "-c", args.command]
    assert args.command is not None  # the model requires `command` or `cmds`
    return list(args.command)


def _env(args: Args, base: Mapping[str, str]) -> dict[str, str]:
    env = dict(base)
    for name, value in (args.env or {}).items():
        if value is None:
            env.pop(name, None)
        elif isinstance(value, bool):
            env[name] = "true" if value else "false"
        else:
            env[name] = str(value)
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


async def run(args: Args, ctx: ToolContext) -> Outcome:
    """Run the command; ``completed`` with its output when it exits 0, else ``failed``."""
    if args.cwd and not os.path.isdir(args.cwd):
        raise ToolError(f"shell tool: cwd {args.cwd!r} is not an existing directory")
    timeout = min(args.timeout_seconds or ctx.timeout, ctx.timeout)
    done = await run_process(_argv(args), timeout=timeout, env=_env(args, ctx.base_env), cwd=args.cwd)
    fields = _fields(done)
    if done.timed_out:
        return Outcome(ok=False, error=f"timed out after {timeout:g}s: killed", output=fields)
    if done.exit_code != 0:
        code = done.exit_code if done.exit_code is not None else "?"
        if isinstance(code, int) and code < 0:
            return Outcome(ok=False, error=f"killed by signal {-code}", output=fields)
        why = _tail(done.stderr.text)
        return Outcome(ok=False, error=f"exited with code {code}{why}", output=fields)
    return Outcome(ok=True, result=fields)
