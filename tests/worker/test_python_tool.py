"""The python tool with a real child interpreter: results, errors, crashes and timeouts."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from noetl.tools.registry import Outcome, ToolContext, run_tool
from tests.worker.procs import read_pids, wait_gone

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def python(code: str, args: dict[str, object] | None = None, timeout: float = 20) -> Outcome:
    tool = {"kind": "python", "code": code, "args": args or {}}
    return asyncio.run(run_tool(tool, ToolContext(timeout, ENV)))


def test_arguments_in_result_out() -> None:
    outcome = python("result = {'total': sum(values), 'name': name}", {"values": [1, 2, 3], "name": "x"})
    assert outcome.ok
    assert outcome.payload() == {"result": {"total": 6, "name": "x"}}


def test_prints_are_kept_next_to_the_result() -> None:
    outcome = python("print('working'); result = 1")
    assert outcome.payload() == {"result": 1, "output": {"stdout": "working\n", "stderr": ""}}


def test_an_exception_fails_with_a_readable_error_and_the_traceback_in_stderr() -> None:
    outcome = python("def f():\n    raise KeyError('missing')\nf()")
    assert not outcome.ok
    assert outcome.error == "KeyError (line 2): 'missing'"
    assert outcome.output is not None and "Traceback" in outcome.output["stderr"]


def test_hard_exit_and_crash_are_failures() -> None:
    assert (
        python("import os; os._exit(7)").error
        == "the python process exited with code 7 before giving a result"
    )
    assert python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)").error == (
        "the python process was killed by signal 9 before giving a result"
    )
    assert python("raise SystemExit(2)").error == "the code called exit(2)"


def test_a_result_that_is_not_json_fails_readably() -> None:
    outcome = python("import datetime; result = datetime.date(2024, 1, 1)")
    assert not outcome.ok
    assert "`result` is not JSON-serialisable (date)" in (outcome.error or "")


def test_timeout_kills_the_interpreter_and_what_it_started(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    code = (
        "import os, subprocess\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        "open(path, 'w').write(f'{os.getpid()}\\n{child.pid}\\n')\n"
        "child.wait()\n"
    )
    outcome = python(code, {"path": str(pids)}, timeout=1.0)
    assert not outcome.ok
    assert outcome.error == "timed out after 1s: killed"
    assert wait_gone(read_pids(pids, 2)) == []


def test_the_code_runs_in_a_scratch_directory_of_its_own() -> None:
    first = python("import os; result = os.getcwd()").result
    second = python("import os; result = os.getcwd()").result
    assert first != second
    assert not Path(first).exists()  # cleaned up after the command
