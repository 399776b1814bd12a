"""Checking what a command asks of a tool, before anything runs (nothing spawned)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from noetl.tools.base import Captured, Outcome
from noetl.tools.http import _body, _check
from noetl.tools.registry import ToolContext, ToolError, run_tool
from noetl.tools.shell import _argv, _env

CTX = ToolContext(timeout=10)


def test_shell_command_string_runs_in_sh_and_argv_as_is() -> None:
    assert _argv({"command": "echo hi | wc -c"}) == ["/bin/sh", "-c", "echo hi | wc -c"]
    assert _argv({"command": ["printf", "%s", "x y"]}) == ["printf", "%s", "x y"]


@pytest.mark.parametrize("command", [None, "", "  ", [], ["ls", 3], {"a": 1}])
def test_shell_command_must_be_a_string_or_argv(command: object) -> None:
    with pytest.raises(ToolError, match="`command` must be"):
        _argv({"command": command})


def test_shell_env_extends_the_base_and_none_removes() -> None:
    env = _env({"env": {"A": "1", "B": 2, "HOME": None}}, {"HOME": "/root", "PATH": "/bin"})
    assert env == {"PATH": "/bin", "A": "1", "B": "2"}
    with pytest.raises(ToolError, match="not a valid variable name"):
        _env({"env": {"A=B": "1"}}, {})
    with pytest.raises(ToolError, match="`env` must be an object"):
        _env({"env": ["A"]}, {})


def test_http_spec_checks() -> None:
    assert _check({"url": "http://x/y"}, CTX) == ("http://x/y", "GET", {}, 10.0)
    assert _check({"url": "https://x", "method": "post", "timeout": 3}, CTX)[1:] == ("POST", {}, 3.0)
    assert _check({"url": "https://x", "timeout": 60}, CTX)[3] == 10.0  # never past the command's timeout
    cases: list[tuple[dict[str, Any], str]] = [
        ({"url": "ftp://x"}, "`url`"),
        ({"url": "http://x", "method": "BREW"}, "`method`"),
        ({"url": "http://x", "headers": {"a": 1}}, "`headers`"),
        ({"url": "http://x", "json": {}, "body": ""}, "not both"),
        ({"url": "http://x", "body": {"a": 1}}, "`body` must be a string"),
        ({"url": "http://x", "timeout": 0}, "`timeout`"),
    ]
    for bad, why in cases:
        with pytest.raises(ToolError, match=why):
            _check(bad, CTX)


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
        ({"kind": "shell", "command": 7}, "shell tool: `command` must be"),
        ({"kind": "python", "code": ""}, "python tool: `code` must be"),
        ({"kind": "http", "url": "nope"}, "http tool: `url` must be"),
    ],
)
def test_bad_tools_fail_the_command_with_a_readable_error(tool: object, why: str) -> None:
    outcome = asyncio.run(run_tool(tool, CTX))
    assert not outcome.ok
    assert why in (outcome.error or "")
