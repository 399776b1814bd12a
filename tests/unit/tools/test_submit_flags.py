"""`noetl submit` flags of the kinds added for playbooks (noop, tasks) and of http's params."""

from __future__ import annotations

from typing import Any

import pytest

from noetl.cli.parser import build_parser
from noetl.cli.submit import build_request
from noetl.errors import ConfigError
from noetl.tools.registry import parse_tool


def tool(*argv: str) -> dict[str, Any]:
    built = build_request(build_parser("submit").parse_args(["submit", *argv]))["tool"]
    parse_tool(built)  # what the flags build is a tool the worker accepts
    return built


def test_noop_input() -> None:
    assert tool("noop") == {"kind": "noop"}
    assert tool("noop", "--input", "a=1", "--input", "b=x") == {"kind": "noop", "input": {"a": 1, "b": "x"}}


def test_tasks() -> None:
    built = tool(
        "tasks", "--task", '{"name": "a", "kind": "noop"}', "--task", '{"name": "b", "kind": "noop"}'
    )
    assert built == {"kind": "tasks", "tasks": [{"name": "a", "kind": "noop"}, {"name": "b", "kind": "noop"}]}
    assert tool("tasks", "--task", '{"name": "a", "kind": "noop"}', "--input", "k=[1]")["input"] == {"k": [1]}
    with pytest.raises(ConfigError, match="--task is not valid JSON"):
        tool("tasks", "--task", "{name")


def test_http_params() -> None:
    built = tool("http", "--url", "http://x", "--param", "q=a b", "--param", "n=1")
    assert built["params"] == {"q": "a b", "n": "1"}
