"""Checking what a command asks of a tool, before anything runs (nothing spawned)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from noetl.tools import http, shell
from noetl.tools.base import Captured, Outcome
from noetl.tools.http import _body
from noetl.tools.registry import ToolContext, ToolError, parse_tool, run_tool, tool_spec
from noetl.tools.shell import _argv, _env

CTX = ToolContext(timeout=10)


def _shell(**fields: Any) -> shell.Args:
    return shell.Args.model_validate({"kind": "shell", **fields})


def test_shell_command_string_runs_in_sh_and_argv_as_is() -> None:
    assert _argv(_shell(command="echo hi | wc -c")) == ["/bin/sh", "-c", "echo hi | wc -c"]
    assert _argv(_shell(command=["printf", "%s", "x y"])) == ["printf", "%s", "x y"]


@pytest.mark.parametrize("command", [None, "", "  ", [], ["ls", 3], {"a": 1}])
def test_shell_command_must_be_a_string_or_argv(command: object) -> None:
    with pytest.raises(ToolError, match="shell tool: command"):
        parse_tool({"kind": "shell", "command": command})


def test_shell_env_extends_the_base_and_none_removes() -> None:
    env = _env(
        _shell(command="x", env={"A": "1", "B": 2, "C": True, "HOME": None}), {"HOME": "/r", "PATH": "/b"}
    )
    assert env == {"PATH": "/b", "A": "1", "B": "2", "C": "true"}
    with pytest.raises(ToolError, match="not a valid variable name"):
        parse_tool({"kind": "shell", "command": "x", "env": {"A=B": "1"}})
    with pytest.raises(ToolError, match="shell tool: env"):
        parse_tool({"kind": "shell", "command": "x", "env": ["A"]})


def test_http_arguments() -> None:
    _, args = parse_tool({"kind": "http", "url": "https://x", "method": "post", "timeout": 3})
    assert isinstance(args, http.Args)
    assert (args.method, args.timeout) == ("POST", 3.0)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"url": "ftp://x"}, "url"),
        ({"url": "http://x", "method": "BREW"}, "method: Value error, must be one of GET, HEAD"),
        ({"url": "http://x", "method": "PURGE"}, "method"),
        ({"url": "http://x", "headers": {"a": 1}}, "headers.a"),
        ({"url": "http://x", "json": {}, "body": ""}, "only one of them"),
        ({"url": "http://x", "payload": {}, "json": {}}, "only one of them"),
        (
            {"url": "http://x", "endpoint": "http://y"},
            "url: Value error, give `url` \\(or NoETL's `endpoint`\\)",
        ),
        ({}, "url: Value error, give `url`"),
        ({"endpoint": "ftp://y"}, "endpoint"),
        (
            {"url": "http://x", "params": {"a": {"b": 1}}},
            "params: Value error, 'a' must be a string, a number",
        ),
        ({"url": "http://x", "timeout": 1, "timeout_seconds": 2}, "timeout_seconds` or `timeout`, not both"),
        ({"url": "http://x", "timeout_seconds": -1}, "timeout_seconds"),
        ({"url": "http://x", "body": {"a": 1}}, "body"),
        ({"url": "http://x", "timeout": 0}, "timeout"),
    ]
    for bad, why in cases:
        with pytest.raises(ToolError, match=f"^http tool: .*{why}"):
            parse_tool({"kind": "http", **bad})


def test_http_body_is_json_when_it_says_so_and_text_otherwise() -> None:
    assert _body(b'{"a": 1}', "application/json; charset=utf-8", False) == {"a": 1}
    assert _body(b"{broken", "application/json", False) == "{broken"
    assert _body(b"hello", "text/plain", False) == "hello"
    assert _body(b"x" * 10, "text/plain", True).endswith("[and more]")


def test_captured_text_marks_truncation() -> None:
    assert Captured("abc", 0).shown() == "abc"
    assert Captured("abc", 5).shown() == "abc\n[truncated: 5 more bytes]"


def test_outcome_payloads() -> None:
    assert Outcome(ok=True, result=3).payload() == {"result": 3}
    assert Outcome(ok=False, error="boom", output={"exit_code": 1}).payload() == {
        "error": "boom",
        "output": {"exit_code": 1},
    }


@pytest.mark.parametrize(
    ("tool", "why"),
    [
        ("shell", "must be an object"),
        ({"command": "true"}, "unknown tool kind None"),
        ({"kind": "ftp"}, "unknown tool kind 'ftp'; expected one of: shell, python, http"),
        ({"kind": "shell", "command": 7}, "shell tool: command"),
        ({"kind": "python", "code": ""}, "python tool: code: Value error, must not be empty"),
        ({"kind": "python", "code": "x", "args": {"not id": 1}}, "keys must be Python identifiers"),
        ({"kind": "http", "url": "nope"}, "http tool: url: String should match pattern"),
    ],
)
def test_bad_tools_fail_the_command_with_a_readable_error(tool: object, why: str) -> None:
    outcome = asyncio.run(run_tool(tool, CTX))
    assert not outcome.ok
    assert why in (outcome.error or "")


def test_http_accepts_noetls_spellings_and_params() -> None:
    _, args = parse_tool(
        {"kind": "http", "endpoint": "http://x/a", "payload": {"k": 1}, "params": {"q": "v", "n": [1, 2]}}
    )
    assert isinstance(args, http.Args)
    assert (args.target, args.payload, args.params) == ("http://x/a", {"k": 1}, {"q": "v", "n": [1, 2]})
    _, args = parse_tool({"kind": "http", "url": "http://x", "timeout_seconds": 2})
    assert isinstance(args, http.Args) and (args.target, args.timeout_seconds) == ("http://x", 2.0)


def test_shell_takes_command_or_cmds_and_a_timeout() -> None:
    _, args = parse_tool({"kind": "shell", "cmds": ["echo a", "echo b"], "timeout_seconds": 5})
    assert _argv(args) == ["/bin/sh", "-c", "set -e\necho a\necho b"]
    assert args.timeout_seconds == 5.0
    for bad, why in [
        ({}, "command: Value error, give `command` or `cmds`, one of them"),
        ({"command": "x", "cmds": ["y"]}, "command: Value error, give `command` or `cmds`"),
        ({"cmds": []}, "cmds: Value error, must be a non-empty list of command lines"),
        ({"cmds": ["ok", " "]}, "cmds: Value error, must be a non-empty list"),
        ({"cmds": "echo"}, "cmds"),
        ({"command": "x", "timeout_seconds": 0}, "timeout_seconds"),
    ]:
        with pytest.raises(ToolError, match=f"^shell tool: {why}"):
            parse_tool({"kind": "shell", **bad})


def test_python_takes_input_context_and_libs() -> None:
    tool = {
        "kind": "python",
        "code": "result = 1",
        "args": {"a": 1},
        "input": {"b": 2},
        "context": {"any key": [1]},
        "libs": {"pd": "os.path"},
    }
    _, args = parse_tool(tool)
    assert tool_spec(args) == tool
    for bad, why in [
        ({"input": {"not id": 1}}, "input: Value error, keys must be Python identifiers"),
        ({"libs": {"x": "a b"}}, "libs: Value error, 'a b' is not a module's import path"),
        ({"libs": {"1x": "os"}}, "libs: Value error, keys must be Python identifiers"),
        ({"context": [1]}, "context"),
    ]:
        with pytest.raises(ToolError, match=f"^python tool: {why}"):
            parse_tool({"kind": "python", "code": "x", **bad})


def test_noop_returns_its_input() -> None:
    kind, args = parse_tool({"kind": "noop", "input": {"a": [1, {"b": None}]}})
    assert asyncio.run(kind.run(args, CTX)) == Outcome(ok=True, result={"a": [1, {"b": None}]})
    kind, args = parse_tool({"kind": "noop"})
    assert asyncio.run(kind.run(args, CTX)) == Outcome(ok=True, result={})


@pytest.mark.parametrize(
    ("tasks", "why"),
    [
        ([], "tasks: List should have at least 1 item"),
        ([{"kind": "noop"}], r"tasks: Value error, tasks\[0\].name: a name made of letters"),
        (
            [{"name": "a", "kind": "noop"}, {"name": "a", "kind": "noop"}],
            r"tasks: Value error, tasks\[1\].name: a second task named 'a'",
        ),
        (
            [{"name": "a", "kind": "tasks"}],
            r"tasks: Value error, tasks\[0\].kind: the kind of a single tool is required",
        ),
        ([{"name": "a"}], r"tasks: Value error, tasks\[0\].kind"),
    ],
)
def test_tasks_arguments(tasks: list[dict[str, Any]], why: str) -> None:
    with pytest.raises(ToolError, match=f"^tasks tool: {why}"):
        parse_tool({"kind": "tasks", "tasks": tasks})
    with pytest.raises(ToolError, match="scope: Value error, unknown key 'extra'"):
        parse_tool({"kind": "tasks", "tasks": [{"name": "a", "kind": "noop"}], "scope": {"extra": 1}})
