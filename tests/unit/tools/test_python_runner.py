"""The python tool's child side, called in-process (the tool itself is tested in tests/worker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from noetl.tools.python_runner import execute, main


def test_arguments_are_variables_and_result_is_returned() -> None:
    assert execute({"code": "result = {'sum': a + b}", "args": {"a": 1, "b": 2}}) == {"result": {"sum": 3}}


def test_no_result_assigned_is_null() -> None:
    assert execute({"code": "x = 1"}) == {"result": None}


def test_an_exception_is_one_readable_line_with_its_line_number() -> None:
    answer = execute({"code": "x = 1\nraise ValueError('bad input')"})
    assert answer == {"error": "ValueError (line 2): bad input"}


def test_exit_is_an_error_not_an_exit() -> None:
    assert execute({"code": "import sys; sys.exit(3)"}) == {"error": "the code called exit(3)"}


def test_syntax_error_names_the_line() -> None:
    answer = execute({"code": "x = 1\ndef f(:\n"})
    assert answer["error"].startswith("SyntaxError (line 2)")


def test_result_that_is_not_json_is_an_error_naming_its_type() -> None:
    answer = execute({"code": "result = {1, 2}"})
    assert "not JSON-serialisable (set)" in answer["error"]
    assert "NaN" not in execute({"code": "result = 1.0"}).get("error", "")
    assert "error" in execute({"code": "result = float('nan')"})


def test_bad_requests_are_refused() -> None:
    assert "error" in execute({"code": 3})
    assert "error" in execute({"code": "pass", "args": {"not an identifier": 1}})
    assert "error" in execute(["code"])


def test_main_writes_the_answer_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    out = tmp_path / "answer.json"
    monkeypatch.setattr(
        "sys.stdin", io.StringIO(json.dumps({"code": "print('hi'); result = n * 2", "args": {"n": 21}}))
    )
    assert main(["runner", str(out)]) == 0
    assert json.loads(out.read_text()) == {"result": 42}
    assert capsys.readouterr().out == "hi\n"
    monkeypatch.setattr("sys.stdin", io.StringIO("{not json"))
    assert main(["runner", str(out)]) == 1
    assert "not JSON" in json.loads(out.read_text())["error"]
