"""The warm templates themselves (real template and command processes, no server): what a forked
command behaves like, where imports run, and a template that dies or cannot start."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from noetl.tools import warm
from noetl.tools.base import OUTPUT_LIMIT
from noetl.tools.python_warm import PRELOAD_SETTING, warm_up
from noetl.tools.registry import Outcome, ToolContext, run_tool
from noetl.tools.warm_mark import is_spare
from tests.worker.procs import read_pids, wait_gone

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


@pytest.fixture(autouse=True)
def no_templates_left() -> Iterator[None]:
    """Each test starts its own templates and stops them: the tests here count and kill them."""
    warm.stop_all()
    yield
    warm.stop_all()


def run(tool: dict[str, Any], env: dict[str, str] = ENV, timeout: float = 20) -> Outcome:
    return asyncio.run(run_tool(tool, ToolContext(timeout, env)))


def python(code: str, env: dict[str, str] = ENV, **tool: Any) -> Outcome:
    return run({"kind": "python", "code": code, **tool}, env)


def importing_module(directory: Path, log: Path) -> dict[str, str]:
    """A module ``marker`` in ``directory`` that appends the pid importing it to ``log``; the
    tool environment that finds it."""
    (directory / "marker.py").write_text(f"import os\nopen({str(log)!r}, 'a').write(f'{{os.getpid()}}\\n')\n")
    return {**ENV, "PYTHONPATH": str(directory)}


def test_libs_are_imported_in_each_command_and_never_in_the_template(tmp_path: Path) -> None:
    env = importing_module(tmp_path, tmp_path / "imports")
    pids = [python("result = os.getpid()", env, libs={"m": "marker"}).result for _ in range(2)]
    assert (tmp_path / "imports").read_text().split() == [str(pid) for pid in pids]
    (template,) = warm.template_pids()
    assert template not in pids


def test_a_preloaded_module_is_imported_once_in_the_template(tmp_path: Path) -> None:
    env = importing_module(tmp_path, tmp_path / "imports")
    warm_up(env, "marker")
    results = [python("import sys\nresult = 'marker' in sys.modules", env).result for _ in range(2)]
    assert results == [True, True]
    assert (tmp_path / "imports").read_text().split() == [str(pid) for pid in warm.template_pids()]


def test_a_template_killed_between_commands_is_replaced_for_the_next() -> None:
    first = python("result = os.getppid()").result
    os.kill(first, signal.SIGKILL)
    assert wait_gone([first]) == []
    second = python("result = os.getppid()")
    assert second.ok, second
    assert second.result != first and warm.template_pids() == [second.result]


def test_a_template_that_cannot_start_fails_the_command_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "crash.py").write_text("import os\nos._exit(3)\n")
    env = {**ENV, "PYTHONPATH": str(tmp_path)}
    warm.start(Path(warm.__file__).with_name("python_runner.py"), env, ["crash"], PRELOAD_SETTING)
    outcome = python("result = 1", env)
    assert (
        outcome.error
        == "the warm python template died twice before starting the command; see the worker's log"
    )


def test_a_command_exits_like_an_interpreter_threads_joined_and_atexit_run() -> None:
    code = (
        "import atexit, threading, time\n"
        "atexit.register(print, 'atexit ran')\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), print('thread finished'))).start()\n"
        "result = 1\n"
    )
    outcome = python(code)
    assert outcome.result == 1
    assert outcome.output == {"stdout": "thread finished\natexit ran\n", "stderr": ""}


def test_each_command_has_its_own_random_state_and_an_empty_stdin() -> None:
    code = "import random, sys\nresult = [random.random(), sys.stdin.read(), sys.argv[0]]"
    first, second = python(code).result, python(code).result
    assert first[0] != second[0]
    assert first[1:] == second[1:] == ["", "-c"]


def test_output_past_the_limit_is_cut_with_a_marker() -> None:
    outcome = python(f"print('x' * {OUTPUT_LIMIT + 1000}, end='')\nresult = 1")
    assert outcome.output is not None
    assert outcome.output["stdout"] == "x" * OUTPUT_LIMIT + "\n[truncated: 1000 more bytes]"


def test_the_duckdb_template_has_duckdb_loaded_and_the_python_one_does_not() -> None:
    pytest.importorskip("duckdb")
    assert run({"kind": "duckdb", "query": "select 42 as n"}).result == [{"n": 42}]
    assert python("result = 1").result == 1
    loaded = {}
    for pid in warm.template_pids():
        process = psutil.Process(pid)
        runner = "duckdb" if any("duckdb_runner.py" in part for part in process.cmdline()) else "python"
        loaded[runner] = any("duckdb" in Path(m.path).name for m in process.memory_maps())
    assert loaded == {"duckdb": True, "python": False}


def test_cancelled_and_timed_out_commands_leave_no_process_and_no_descriptor(tmp_path: Path) -> None:
    code = (
        "import os, subprocess\n"
        "sleeper = subprocess.Popen(['sleep', '300'])\n"
        "open(path, 'w').write(f'{os.getpid()}\\n{sleeper.pid}\\n')\n"
        "sleeper.wait()\n"
    )

    async def scenario() -> tuple[int, int]:
        await run_tool({"kind": "python", "code": "result = 1"}, ToolContext(20, ENV))  # the template
        before = len(os.listdir("/proc/self/fd"))
        for round_ in range(3):
            path = tmp_path / f"pids{round_}"
            tool = {"kind": "python", "code": code, "args": {"path": str(path)}}
            cancelled = asyncio.ensure_future(run_tool(tool, ToolContext(20, ENV)))
            pids = await asyncio.to_thread(read_pids, path, 2)
            cancelled.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cancelled
            assert cancelled.cancelled()
            assert await asyncio.to_thread(wait_gone, pids) == []
            path.unlink()
            timed_out = await run_tool(tool, ToolContext(0.5, ENV))
            assert timed_out.error == "timed out after 0.5s: killed"
            assert await asyncio.to_thread(wait_gone, read_pids(path, 2)) == []
        return before, len(os.listdir("/proc/self/fd"))

    before, after = asyncio.run(scenario())
    assert after == before


def test_a_command_has_its_workers_limits_and_umask_and_is_dumpable_as_an_execd_child_is() -> None:
    import resource

    code = (
        "import ctypes, resource\n"
        "umask = os.umask(0); os.umask(umask)\n"
        "prctl = ctypes.CDLL(None).prctl\n"
        "limits = [list(resource.getrlimit(r)) for r in (resource.RLIMIT_NOFILE, resource.RLIMIT_STACK)]\n"
        "result = [*limits, umask, prctl(3, 0, 0, 0, 0)]\n"  # 3: PR_GET_DUMPABLE
    )
    umask = os.umask(0)
    os.umask(umask)
    expected = [
        list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        list(resource.getrlimit(resource.RLIMIT_STACK)),
        umask,
        1,
    ]
    assert python(code).result == expected


# --- the spare: a command's process forked before its request ------------------------------------


def spare_of(template: int, timeout: float = 10.0) -> int:
    """The pid of the template's spare child, once it has one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(psutil.Error):
            spares = [c.pid for c in psutil.Process(template).children() if is_spare(c.name())]
            assert len(spares) <= 1, spares
            if spares:
                return spares[0]
        time.sleep(0.02)
    raise AssertionError(f"template {template} has no spare child after {timeout}s")


def the_template() -> int:
    python("result = 1")  # the template starts, and its spare
    (template,) = warm.template_pids()
    return template


def test_a_command_runs_in_the_spare_forked_before_its_request() -> None:
    template = the_template()
    code = "result = [os.getpid(), os.getsid(0), open('/proc/self/comm').read().strip()]"
    for _ in range(3):
        spare = spare_of(template)
        # Its own session, and the name of a command (the template's), no longer the spare's.
        assert python(code).result == [spare, spare, psutil.Process(template).name()]


def test_a_spare_runs_nothing_and_holds_only_its_socket() -> None:
    template = the_template()
    spare = spare_of(template)
    process = psutil.Process(spare)
    assert process.ppid() == template and os.getsid(spare) == spare
    assert process.children() == [] and process.status() == psutil.STATUS_SLEEPING
    held = {int(fd): os.readlink(f"/proc/{spare}/fd/{fd}") for fd in os.listdir(f"/proc/{spare}/fd")}
    beyond_stdio = [target for fd, target in held.items() if fd > 2]
    assert len(beyond_stdio) == 1 and beyond_stdio[0].startswith("socket:"), held


def test_no_spare_is_forked_while_a_command_runs_and_one_is_after(tmp_path: Path) -> None:
    template = the_template()
    gate, ran = tmp_path / "gate", tmp_path / "ran"
    code = (
        "import os, time\n"
        "open(ran, 'w').write(str(os.getpid()))\n"
        "while not os.path.exists(gate):\n"
        "    time.sleep(0.01)\n"
        "result = os.getpid()\n"
    )

    async def scenario() -> tuple[int, Outcome]:
        running = asyncio.ensure_future(
            run_tool(
                {"kind": "python", "code": code, "args": {"gate": str(gate), "ran": str(ran)}},
                ToolContext(20, ENV),
            )
        )
        (pid,) = await asyncio.to_thread(read_pids, ran, 1)
        children = psutil.Process(template).children()
        assert [c.pid for c in children] == [pid], children  # the command only: no spare meanwhile
        gate.touch()
        return pid, await running

    pid, outcome = asyncio.run(scenario())
    assert outcome.result == pid
    assert spare_of(template) != pid


def test_a_command_handed_to_a_spare_that_died_is_forked_for_itself() -> None:
    template = the_template()
    spare = spare_of(template)

    async def scenario() -> Outcome:
        os.kill(template, signal.SIGSTOP)  # it sees the spare's death only after the request
        try:
            os.kill(spare, signal.SIGKILL)
            while psutil.Process(spare).status() != psutil.STATUS_ZOMBIE:
                await asyncio.sleep(0.01)
            running = asyncio.ensure_future(
                run_tool({"kind": "python", "code": "result = os.getpid()"}, ToolContext(20, ENV))
            )
            for _ in range(10):  # the request is written before the first real wait
                await asyncio.sleep(0)
        finally:
            os.kill(template, signal.SIGCONT)
        return await running

    outcome = asyncio.run(scenario())
    assert outcome.ok, outcome
    assert outcome.result != spare and wait_gone([spare]) == []
    assert spare_of(template) not in (spare, outcome.result)
    assert warm.template_pids() == [template]


def test_a_stopped_template_reaps_its_spare_before_it_leaves() -> None:
    template = the_template()
    spare = spare_of(template)
    warm.stop_all()
    assert not psutil.pid_exists(template)
    assert not psutil.pid_exists(spare)  # reaped: not a zombie left to whoever inherits it
