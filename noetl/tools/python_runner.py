"""The child side of the python tool: ``python -m noetl.tools.python_runner RESULT_FILE``.

Reads ``{"code", "args", "input", "context", "libs"}`` as JSON on stdin and runs the code with
NoETL's conventions: each argument and input key is a global, ``input_data`` holds them all,
``context`` is a read-only mapping of what the playbook's templates see, ``libs`` (alias -> module)
are imported first, and ``json``, ``os``, ``datetime`` and ``uuid`` are there already. The result is
the global ``result``; a ``return`` at the top level of the code also sets it; when it is still
unset and the code defines ``main``, ``main`` is called with the input keys its parameters name.
Writes ``{"result": ...}`` or ``{"error": "..."}`` as JSON to RESULT_FILE; the code's own prints go
to stdout and stderr, which the worker captures. Standard library only, so that it starts fast.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import traceback
import types
from typing import Any

_FILENAME = "<python tool code>"


class _Return(BaseException):
    """Raised by a top-level ``return``: a BaseException, so that ``except Exception`` in the
    code does not catch it."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


def _top_level_returns() -> Any:
    """A transformer that turns ``return X`` outside any function into ``raise __noetl_return__(X)``."""
    import ast

    class TopLevelReturns(ast.NodeTransformer):
        def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
            return node  # a function's own returns stay

        def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AsyncFunctionDef:
            return node

        def visit_Lambda(self, node: ast.Lambda) -> ast.Lambda:
            return node

        def visit_ClassDef(self, node: ast.ClassDef) -> ast.ClassDef:
            return node

        def visit_Return(self, node: ast.Return) -> ast.Raise:
            value = node.value if node.value is not None else ast.Constant(value=None)
            call = ast.Call(func=ast.Name(id="__noetl_return__", ctx=ast.Load()), args=[value], keywords=[])
            return ast.copy_location(ast.Raise(exc=call, cause=None), node)

    return TopLevelReturns()


def _compile(code: str) -> types.CodeType:
    if "return" not in code:
        return compile(code, _FILENAME, "exec")  # the common case skips the ast round trip
    import ast

    tree = ast.parse(code, _FILENAME, "exec")
    tree = ast.fix_missing_locations(_top_level_returns().visit(tree))
    return compile(tree, _FILENAME, "exec")


def _error_of(exc: BaseException) -> str:
    """One readable line, with where in the code it happened when that is known."""
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == _FILENAME:
            where = f" (line {frame.lineno})"
            break
    text = str(exc)
    return f"{type(exc).__name__}{where}: {text}" if text else f"{type(exc).__name__}{where}"


def _mapping(request: dict[str, Any], key: str) -> dict[str, Any]:
    value = request.get(key) or {}
    if not isinstance(value, dict):
        raise ValueError(f"python tool: `{key}` must be an object")
    return value


def _variables(request: dict[str, Any]) -> dict[str, Any]:
    variables = {**_mapping(request, "args"), **_mapping(request, "input")}
    bad = [key for key in variables if not (isinstance(key, str) and key.isidentifier())]
    if bad:
        raise ValueError(f"python tool: input key {bad[0]!r} is not a Python identifier")
    return variables


def _libs(request: dict[str, Any]) -> dict[str, Any]:
    modules = {}
    for alias, name in _mapping(request, "libs").items():
        if not (isinstance(alias, str) and alias.isidentifier()) or not isinstance(name, str):
            raise ValueError(f"python tool: libs: {alias!r} must name a module by its import path")
        try:
            modules[alias] = importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"python tool: libs.{alias}: cannot import {name!r}: {exc}") from None
    return modules


def _call_main(main: Any, variables: dict[str, Any], namespace: dict[str, Any]) -> Any:
    """Call ``main`` with the input keys its parameters name (``context`` and ``input_data`` too)."""
    import inspect  # only code with a `main` pays for it

    kwargs: dict[str, Any] = {}
    for param in inspect.signature(main).parameters.values():
        if param.kind is param.VAR_KEYWORD:
            kwargs.update({k: v for k, v in variables.items() if k not in kwargs})
        elif param.kind is param.VAR_POSITIONAL:
            continue
        elif param.name in variables:
            kwargs[param.name] = variables[param.name]
        elif param.name in ("context", "input_data"):
            kwargs[param.name] = namespace[param.name]
        elif param.default is param.empty:
            raise TypeError(f"main() takes {param.name!r}, which is not an input key")
    return main(**kwargs)


def _ready_made(code: str) -> dict[str, Any]:
    """json, os, datetime and uuid as globals; the last two only imported when the code names them."""
    modules: dict[str, Any] = {"json": json, "os": os}
    for name in ("datetime", "uuid"):
        if name in code:
            modules[name] = importlib.import_module(name)
    return modules


def execute(request: Any) -> dict[str, Any]:
    """Run one request; return the JSON-ready answer (``result`` or ``error``)."""
    if not isinstance(request, dict) or not isinstance(request.get("code"), str):
        return {"error": "python tool: `code` must be a string"}
    try:
        variables = _variables(request)
        context = types.MappingProxyType(_mapping(request, "context"))
        libs = _libs(request)
    except ValueError as exc:
        return {"error": str(exc)}
    namespace: dict[str, Any] = {
        "__name__": "__noetl__",
        "__noetl_return__": _Return,
        # NoETL's python tool has these ready; playbooks written for it use them without imports.
        **_ready_made(request["code"]),
        **libs,
        **variables,
        "input_data": dict(variables),
        "context": context,
    }
    try:
        code = _compile(request["code"])
    except SyntaxError as exc:
        return {"error": f"SyntaxError (line {exc.lineno}): {exc.msg}"}
    try:
        try:
            exec(code, namespace)
        except _Return as returned:
            namespace["result"] = returned.value
        if "result" not in namespace and callable(namespace.get("main")):
            namespace["result"] = _call_main(namespace["main"], variables, namespace)
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
