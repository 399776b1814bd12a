"""The python tool: ``code`` plus ``args`` -> the JSON-serialisable value the code assigns to ``result``.

As in NoETL playbooks, the arguments are variables in the code's namespace. The code runs in a
child interpreter (``python_runner``) in its own process group, so a timeout, a crash or an
``exit()`` fails the command and never the worker.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from noetl.protocol.types import JsonObject, Strict, Text
from noetl.tools.base import Outcome, ToolContext, ToolError, run_process

# The largest result file read back; bigger results fail with a readable message.
RESULT_LIMIT = 8 * 1024 * 1024
# The child runs the runner's source with -c: it needs nothing importable but the standard library.
_RUNNER = Path(__file__).with_name("python_runner.py")


KIND = "python"


class Args(Strict):
    """What a python command accepts (the server validates requests with it)."""

    kind: Literal["python"]
    code: Annotated[Text, Field(min_length=1)]
    args: JsonObject | None = None


def _request(spec: Mapping[str, Any]) -> bytes:
    code = spec.get("code")
    if not isinstance(code, str) or not code.strip():
        raise ToolError("python tool: `code` must be a non-empty string")
    args = spec.get("args") or {}
    if not isinstance(args, Mapping):
        raise ToolError("python tool: `args` must be an object")
    return json.dumps({"code": code, "args": dict(args)}).encode()


def _read_answer(path: Path) -> dict[str, Any] | None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size > RESULT_LIMIT:
        return {"error": f"`result` is {size} bytes of JSON; the limit is {RESULT_LIMIT}"}
    try:
        answer = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None  # the process died while writing it
    return answer if isinstance(answer, dict) else None


async def run(spec: Mapping[str, Any], ctx: ToolContext) -> Outcome:
    """Run the code; ``completed`` with ``result`` (and the code's prints), else ``failed``."""
    request = _request(spec)
    with tempfile.TemporaryDirectory(prefix="noetl-python-") as tmp:
        result_path = Path(tmp) / "result.json"
        done = await run_process(
            [sys.executable, "-c", _RUNNER.read_text(encoding="utf-8"), str(result_path)],
            timeout=ctx.timeout,
            env=ctx.base_env,
            cwd=tmp,
            stdin=request,
        )
        answer = _read_answer(result_path)
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
