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


def run_python(**tool: object) -> Outcome:
    return asyncio.run(run_tool({"kind": "python", **tool}, ToolContext(20, ENV)))


def test_input_keys_are_globals_and_input_data_holds_them_all() -> None:
    outcome = run_python(
        code="result = {'sum': a + b, 'all': input_data}", args={"a": 1, "b": 1}, input={"b": 2, "c": "x"}
    )
    # `input` (a playbook's) comes after `args` (noetl submit's)
    assert outcome.result == {"sum": 3, "all": {"a": 1, "b": 2, "c": "x"}}


def test_context_is_there_and_read_only() -> None:
    outcome = run_python(code="result = context['start']['n'] + 1", context={"start": {"n": 41}})
    assert outcome.result == 42
    outcome = run_python(code="context['x'] = 1", context={"start": {}})
    assert outcome.error == "TypeError (line 1): 'mappingproxy' object does not support item assignment"


def test_libs_are_imported_under_their_alias() -> None:
    outcome = run_python(
        code="result = [m.floor(2.5), p.basename('/a/b')]", libs={"m": "math", "p": "os.path"}
    )
    assert outcome.result == [2, "b"]
    outcome = run_python(code="result = 1", libs={"pd": "surely_not_installed"})
    assert outcome.error == (
        "python tool: libs.pd: cannot import 'surely_not_installed': No module named 'surely_not_installed'"
    )


def test_a_top_level_return_sets_the_result() -> None:
    code = "if n > 1:\n    return {'big': n}\nresult = 'small'"
    assert run_python(code=code, input={"n": 5}).result == {"big": 5}
    assert run_python(code=code, input={"n": 0}).result == "small"
    # not caught by the code's own `except Exception`, and a function's return is its own
    code = "def f():\n    return 2\ntry:\n    return f() * 10\nexcept Exception:\n    result = 'caught'"
    assert run_python(code=code).result == 20


def test_main_is_called_with_the_input_keys_it_names() -> None:
    code = (
        "def main(a, b=10, context=None, **rest):\n"
        "    return {'a': a, 'b': b, 'ctx': context['k'], 'rest': rest}"
    )
    outcome = run_python(code=code, input={"a": 1, "z": 2}, context={"k": "v"})
    assert outcome.result == {"a": 1, "b": 10, "ctx": "v", "rest": {"z": 2}}
    # a `result` set by the code wins; main is not called
    assert run_python(code="def main():\n    raise ValueError\nresult = 3").result == 3
    outcome = run_python(code="def main(missing):\n    return 1", input={"a": 1})
    assert outcome.error == "TypeError: main() takes 'missing', which is not an input key"


def test_noetls_ready_made_modules() -> None:
    outcome = run_python(
        code="result = [json.dumps({'a': 1}), type(uuid.uuid4()).__name__, os.sep, "
        "datetime.date(2024, 1, 2).isoformat()]"
    )
    assert outcome.result == ['{"a": 1}', "UUID", "/", "2024-01-02"]


def test_a_link_planted_at_the_answer_file_is_not_followed(tmp_path: Path) -> None:
    # A file the code may not hand back as its answer (JSON the worker could read).
    secret = tmp_path / "secret.json"
    secret.write_text('{"result": "the worker\'s secret"}')
    code = (
        "import os, sys\n"
        "answer = sys.argv[-1]\n"
        f"os.symlink({str(secret)!r}, answer)\n"
        "os._exit(0)  # before the runner writes the real answer\n"
    )
    outcome = python(code)
    assert not outcome.ok
    assert outcome.error == "the answer file was replaced by a symbolic link; not followed"
    assert "secret" not in str(outcome.payload())


def test_a_fifo_planted_at_the_answer_file_does_not_block_the_worker() -> None:
    code = "import os, sys\nos.mkfifo(sys.argv[-1])\nos._exit(0)\n"
    outcome = python(code, timeout=5)
    assert not outcome.ok
    assert outcome.error == "the answer file was replaced by something other than a file; not read"


def test_a_large_result_comes_back_whole_and_one_past_the_limit_fails_readably() -> None:
    from noetl.tools.child import ANSWER_LIMIT

    big = python("result = 'x' * 200_000")  # read in a thread: over what is read on the loop
    assert big.result == "x" * 200_000
    too_big = python(f"result = 'x' * {ANSWER_LIMIT}")
    size = ANSWER_LIMIT + len('{"result": ""}')
    assert too_big.error == f"the answer is {size} bytes of JSON; the limit is {ANSWER_LIMIT}"
