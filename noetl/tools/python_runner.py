"""The child side of the python tool: ``python -m noetl.tools.python_runner RESULT_FILE``.

Reads ``{"code": "...", "args": {...}}`` as JSON on stdin, runs the code with the arguments as
variables of its namespace, and writes ``{"result": <the code's `result`>}`` or ``{"error": "..."}``
as JSON to RESULT_FILE. The code's own prints go to stdout and stderr, which the worker captures.
Kept free of imports beyond the standard library so that it starts fast.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from typing import Any

_FILENAME = "<python tool code>"


def _error_of(exc: BaseException) -> str:
    """One readable line, with where in the code it happened when that is known."""
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == _FILENAME:
            where = f" (line {frame.lineno})"
            break
    text = str(exc)
    return f"{type(exc).__name__}{where}: {text}" if text else f"{type(exc).__name__}{where}"


def execute(request: Any) -> dict[str, Any]:
    """Run one request; return the JSON-ready answer (``result`` or ``error``)."""
    if not isinstance(request, dict) or not isinstance(request.get("code"), str):
        return {"error": "python tool: `code` must be a string"}
    args = request.get("args") or {}
    if not isinstance(args, dict) or not all(isinstance(k, str) and k.isidentifier() for k in args):
        return {"error": "python tool: `args` must be an object whose keys are Python identifiers"}
    namespace: dict[str, Any] = {"__name__": "__noetl__", **args}
    try:
        code = compile(request["code"], _FILENAME, "exec")
    except SyntaxError as exc:
        return {"error": f"SyntaxError (line {exc.lineno}): {exc.msg}"}
    try:
        exec(code, namespace)
    except SystemExit as exc:
        return {"error": f"the code called exit({exc.code!r})"}
    except KeyboardInterrupt:
        return {"error": "the code was interrupted"}
    except Exception as exc:
        # The full story goes to the captured stderr, without the runner's own frame.
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next if exc.__traceback__ else None)
        return {"error": _error_of(exc)}
    result = namespace.get("result")
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return {"error": f"`result` is not JSON-serialisable ({type(result).__name__}): {exc}"}
    return {"result": result}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m noetl.tools.python_runner RESULT_FILE", file=sys.stderr)
        return 2
    try:
        request = json.load(sys.stdin)
    except ValueError as exc:
        answer: dict[str, Any] = {"error": f"python tool: the request is not JSON: {exc}"}
    else:
        answer = execute(request)
    with open(argv[1], "w", encoding="utf-8") as fh:
        json.dump(answer, fh, allow_nan=False)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # the code may have closed it
            stream.flush()
    return 0 if "result" in answer else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
