"""The shell tool with real processes: output, exit codes, limits, and no survivors."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import psutil

from noetl.tools.base import OUTPUT_LIMIT
from noetl.tools.registry import Outcome, ToolContext, run_tool
from tests.worker.procs import alive, read_pids, wait_gone

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def shell(command: object, timeout: float = 10, **extra: object) -> Outcome:
    return asyncio.run(run_tool({"kind": "shell", "command": command, **extra}, ToolContext(timeout, ENV)))


def test_output_and_exit_code() -> None:
    outcome = shell("echo out; echo err >&2")
    assert outcome.ok
    assert outcome.result == {"exit_code": 0, "stdout": "out\n", "stderr": "err\n"}


def test_argv_is_not_interpreted_by_a_shell() -> None:
    outcome = shell(["echo", "$HOME", "a;b"])
    assert outcome.result["stdout"] == "$HOME a;b\n"


def test_non_zero_exit_fails_with_the_last_stderr_line() -> None:
    outcome = shell("echo starting; echo 'disk full' >&2; exit 3")
    assert not outcome.ok
    assert outcome.error == "exited with code 3: disk full"
    assert outcome.output == {"exit_code": 3, "stdout": "starting\n", "stderr": "disk full\n"}


def test_env_and_cwd(tmp_path: Path) -> None:
    outcome = shell('echo "$GREETING"; pwd', env={"GREETING": "hello"}, cwd=str(tmp_path))
    assert outcome.result["stdout"] == f"hello\n{tmp_path}\n"


def test_missing_program_or_cwd_is_a_readable_failure(tmp_path: Path) -> None:
    assert shell(["no-such-program-here"]).error == "cannot run 'no-such-program-here': no such program"
    assert "not an existing directory" in (shell("true", cwd=str(tmp_path / "nope")).error or "")


def test_output_is_cut_at_the_limit_with_a_marker_and_the_command_is_not_blocked() -> None:
    outcome = shell(f"head -c {OUTPUT_LIMIT * 4} /dev/zero | tr '\\0' a; echo done >&2")
    assert outcome.ok
    stdout = outcome.result["stdout"]
    assert stdout.startswith("a" * OUTPUT_LIMIT)
    assert stdout.endswith(f"\n[truncated: {OUTPUT_LIMIT * 3} more bytes]")
    assert outcome.result["stderr"] == "done\n"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    outcome = shell(f"sleep 300 & echo $! > {pids}; echo $$ >> {pids}; sleep 300", timeout=0.5)
    assert not outcome.ok
    assert outcome.error == "timed out after 0.5s: killed"
    assert wait_gone(read_pids(pids, 2)) == []


def test_what_a_command_leaves_behind_is_killed_when_it_exits(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    outcome = shell(f"sleep 300 > /dev/null 2>&1 & echo $! > {pids}")
    assert outcome.ok
    assert wait_gone(read_pids(pids, 1)) == []


def test_cancelling_the_tool_kills_its_processes(tmp_path: Path) -> None:
    pids = tmp_path / "pids"

    async def scenario() -> None:
        task = asyncio.ensure_future(
            run_tool({"kind": "shell", "command": f"echo $$ > {pids}; sleep 300"}, ToolContext(60, ENV))
        )
        pid = await asyncio.to_thread(read_pids, pids, 1)
        assert alive(pid[0])
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        assert wait_gone(pid) == []

    asyncio.run(scenario())


def test_killed_by_a_signal_says_so() -> None:
    outcome = shell("kill -9 $$")
    assert outcome.error == "killed by signal 9"


def cmds(lines: list[str], timeout: float = 10, **extra: object) -> Outcome:
    return asyncio.run(run_tool({"kind": "shell", "cmds": lines, **extra}, ToolContext(timeout, ENV)))


def test_cmds_run_in_order_in_one_shell() -> None:
    outcome = cmds(["X=from-first", "echo one", 'echo "$X"', "echo err >&2"])
    assert outcome.ok
    assert outcome.result == {"exit_code": 0, "stdout": "one\nfrom-first\n", "stderr": "err\n"}


def test_the_first_failing_cmd_stops_the_rest_with_its_exit_code() -> None:
    outcome = cmds(["echo before", "echo broken >&2; exit 4", "echo after"])
    assert not outcome.ok
    assert outcome.error == "exited with code 4: broken"
    assert outcome.output == {"exit_code": 4, "stdout": "before\n", "stderr": "broken\n"}


def test_timeout_seconds_bounds_the_command_and_kills_its_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # 2 s: time enough for the first line to write its pid on a busy machine
    outcome = cmds([f"sleep 300 & echo $! > {pids}", "sleep 300"], timeout=60, timeout_seconds=2)
    assert outcome.error == "timed out after 2s: killed"
    assert wait_gone(read_pids(pids, 1)) == []
    # the command's own timeout still wins when it is shorter
    assert cmds(["sleep 300"], timeout=0.3, timeout_seconds=30).error == "timed out after 0.3s: killed"


def test_a_cancel_while_the_process_is_being_set_up_kills_its_group(tmp_path: Path) -> None:
    # Under load a lost lease can land while asyncio still connects the child's pipes. asyncio's own
    # clean-up then kills only the shell and waits for pipes its `sleep` still holds: 300 s.
    pids = tmp_path / "pids"

    async def scenario() -> None:
        me = psutil.Process()
        command = f"sleep 300 & echo $! > {pids}; echo $$ >> {pids}; wait"
        before = {child.pid for child in me.children()}  # a module's stack may be running too
        task = asyncio.ensure_future(run_tool({"kind": "shell", "command": command}, ToolContext(60, ENV)))
        while {child.pid for child in me.children()} <= before:  # spawned; its pipes not connected yet
            await asyncio.sleep(0)
        started = read_pids(pids, 2)  # blocking on purpose: the loop must not connect them meanwhile
        task.cancel()
        try:
            done, _ = await asyncio.wait({task}, timeout=20)
            assert task in done and task.cancelled()
            assert wait_gone(started) == []
        finally:
            for pid in started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    asyncio.run(scenario())
