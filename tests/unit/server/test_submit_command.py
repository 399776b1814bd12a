"""`noetl submit` arguments -> request body (pure), and how an outcome is printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from noetl.cli.parser import build_parser
from noetl.cli.submit import build_request, print_outcome
from noetl.errors import ConfigError
from noetl.tools.flags import parse_value


def request(*argv: str) -> dict[str, Any]:
    return build_request(build_parser("submit").parse_args(["submit", *argv]))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("1.5", 1.5),
        ("true", True),
        ("null", None),
        ('{"a": [1]}', {"a": [1]}),
        ("hello", "hello"),
        ("", ""),
        ("'quoted'", "'quoted'"),
        ("[1,", "[1,"),
    ],
)
def test_arg_values_are_json_when_they_parse(text: str, value: Any) -> None:
    assert parse_value(text) == value


def test_shell() -> None:
    assert request("shell", "--command", "echo hi", "--env", "A=1", "--env", "B=x=y", "--cwd", "/tmp") == {
        "tool": {"kind": "shell", "command": "echo hi", "env": {"A": "1", "B": "x=y"}, "cwd": "/tmp"}
    }


def test_python_args_and_common_flags_before_or_after_the_kind() -> None:
    body = request(
        "--timeout", "30", "python", "--code", "x", "--arg", "n=3", "--arg", "s=hi", "--max-attempts", "2"
    )
    assert body == {
        "tool": {"kind": "python", "code": "x", "args": {"n": 3, "s": "hi"}},
        "timeout": 30.0,
        "max_attempts": 2,
    }
    assert request("python", "--code", "x", "--wait")["tool"] == {"kind": "python", "code": "x"}


def test_http() -> None:
    body = request(
        "http", "--url", "https://h/x", "--method", "post", "--header", "X-A: 1", "--json", '{"k": 1}'
    )
    assert body == {
        "tool": {
            "kind": "http",
            "url": "https://h/x",
            "method": "POST",
            "headers": {"X-A": "1"},
            "json": {"k": 1},
        }
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "say what to run"),
        (("python", "--code", "x", "--arg", "novalue"), "--arg 'novalue': expected KEY=VALUE"),
        (("http", "--url", "u", "--json", "{"), "--json is not valid JSON"),
    ],
)
def test_usage_errors_are_config_errors(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        request(*argv)


def test_file_json_and_yaml_with_flag_overrides(tmp_path: Path) -> None:
    spec = {"tool": {"kind": "shell", "command": "echo hi"}, "timeout": 30, "max_attempts": 3}
    (tmp_path / "cmd.json").write_text(json.dumps(spec))
    (tmp_path / "cmd.yaml").write_text(
        "tool:\n  kind: shell\n  command: echo hi\ntimeout: 30\nmax_attempts: 3\n"
    )
    assert request("--file", str(tmp_path / "cmd.json")) == spec
    assert request("--file", str(tmp_path / "cmd.yaml"), "--timeout", "5") == {**spec, "timeout": 5.0}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.json", "{", "is not valid JSON"),
        ("bad.yaml", "tool: [", "is not valid YAML"),
        ("list.yaml", "- 1", "expected an object like"),
        ("nokind.json", '{"tool": {}}', "expected an object like"),
    ],
)
def test_bad_files_are_one_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        request("--file", str(tmp_path / name))
    assert "\n" not in str(caught.value)


def test_missing_file_and_file_with_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        request("--file", str(tmp_path / "nope.json"))
    with pytest.raises(ConfigError, match="not both"):
        request("--file", str(tmp_path / "x.json"), "shell", "--command", "x")


def _execution(status: str, result: Any = None, events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "execution_id": "e1",
        "status": status,
        "commands": [{"result": result, "error": None if status == "COMPLETED" else "lease expired"}],
        "events": events or [],
    }


def test_print_outcome_completed(capsys: pytest.CaptureFixture[str]) -> None:
    assert print_outcome(_execution("COMPLETED", {"stdout": "hi\n"})) == 0
    assert json.loads(capsys.readouterr().out) == {"stdout": "hi\n"}


def test_print_outcome_failed_and_died(capsys: pytest.CaptureFixture[str]) -> None:
    failed = _execution("FAILED", events=[{"type": "failed", "payload": {"error": "exit 3", "stderr": "x"}}])
    assert print_outcome(failed) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"error": "exit 3", "stderr": "x"}
    assert captured.err.strip() == "noetl: execution e1 FAILED: exit 3"
    assert print_outcome(_execution("FAILED")) == 1
    assert json.loads(capsys.readouterr().out) == {"error": "lease expired"}
