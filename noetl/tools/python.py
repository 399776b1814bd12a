"""The python tool: ``code`` -> the JSON-serialisable value the code assigns to ``result``.

As in NoETL playbooks, each key of ``args`` and ``input`` is a global of the code, ``input_data``
holds them all, ``context`` is a read-only mapping of what the playbook's templates see, and
``libs`` (alias -> module) are imported first; a top-level ``return`` sets the result, and a ``main``
is called when the code defines one and sets no ``result`` (see ``python_runner``). The code runs
in a child interpreter in its own process group, so a timeout, a crash or an ``exit()`` fails the
command and never the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import stat
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator

from noetl.protocol.types import JsonObject, JsonValue, NonBlank, Strict
from noetl.tools.base import Outcome, ToolContext, run_process
from noetl.tools.flags import parse_pairs, parse_value

KIND = "python"
HELP = "run Python code"
# The largest result file read back; bigger results fail with a readable message.
RESULT_LIMIT = 8 * 1024 * 1024
# The child runs the runner's source with -c: it needs nothing importable but the standard library.
_RUNNER = Path(__file__).with_name("python_runner.py")


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


def _request(args: Args) -> bytes:
    request = {
        "code": args.code,
        "args": args.args or {},
        "input": args.input or {},
        "context": args.context or {},
        "libs": args.libs or {},
    }
    return json.dumps(request).encode()


def _read_answer(path: Path) -> dict[str, Any] | None:
    """The child's answer. The code ran as the worker's user and could have put a link (or a FIFO)
    where the answer goes: the file is opened without following links and without blocking, and
    only a regular file is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return {"error": "the answer file was replaced by a symbolic link; not followed"}
        raise
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            return {"error": "the answer file was replaced by something other than a file; not read"}
        if info.st_size > RESULT_LIMIT:
            return {"error": f"`result` is {info.st_size} bytes of JSON; the limit is {RESULT_LIMIT}"}
        raw = fh.read(RESULT_LIMIT + 1)
    if len(raw) > RESULT_LIMIT:
        return {"error": f"`result` is over {RESULT_LIMIT} bytes of JSON; the limit is {RESULT_LIMIT}"}
    try:
        answer = json.loads(raw.decode("utf-8"))
    except ValueError:
        return None  # the process died while writing it
    return answer if isinstance(answer, dict) else None


async def run(args: Args, ctx: ToolContext) -> Outcome:
    """Run the code; ``completed`` with ``result`` (and the code's prints), else ``failed``."""
    request = _request(args)
    with tempfile.TemporaryDirectory(prefix="noetl-python-") as tmp:
        result_path = Path(tmp) / "result.json"
        done = await run_process(
            [sys.executable, "-c", _RUNNER.read_text(encoding="utf-8"), str(result_path)],
            timeout=ctx.timeout,
            env=ctx.base_env,
            cwd=tmp,
            stdin=request,
        )
        # Up to 8 MiB of JSON to read and parse: in a thread, so other jobs' heartbeats go on.
        answer = await asyncio.to_thread(_read_answer, result_path)
    prints = {"stdout": done.stdout.shown(), "stderr": done.stderr.shown()}
    if done.timed_out:
        return Outcome(ok=False, error=f"timed out after {ctx.timeout:g}s: killed", output=prints)
    if answer is None:
        code = done.exit_code
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        return Outcome(ok=False, error=f"the python process {how} before giving a result", output=prints)
    if "error" in answer:
        return Outcome(ok=False, error=str(answer["error"]), output=prints)
    printed = bool(done.stdout.text or done.stderr.text)
    return Outcome(ok=True, result=answer.get("result"), output=prints if printed else None)
