"""The tasks tool (a playbook step's list of tasks) with real processes: each task rendered just
before it runs with the earlier tasks' results, the first failure stopping the list, one time
budget for all of them, and nothing left running after a cancel."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

from noetl.tools.registry import Outcome, ToolContext, run_tool
from tests.worker.procs import alive, read_pids, wait_gone

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
SCOPE = {
    "execution_id": "exec-7",
    "workload": {"greeting": "hello"},
    "ctx": {"mood": "calm"},
    "results": {"start": {"n": 3}},
    "not_run": ["start", "skipped"],
}


def tasks(items: list[dict[str, Any]], timeout: float = 30, **extra: Any) -> Outcome:
    tool = {"kind": "tasks", "tasks": items, "scope": SCOPE, **extra}
    return asyncio.run(run_tool(tool, ToolContext(timeout, ENV)))


def test_later_tasks_see_earlier_results_and_the_last_result_is_the_steps() -> None:
    outcome = tasks(
        [
            {
                "name": "numbers",
                "kind": "python",
                "code": "result = list(range(n))",
                "input": {"n": "{{ start.n }}"},
            },
            {
                "name": "echo",
                "kind": "shell",
                "cmds": ["echo {{ numbers | join(',') }} {{ greeting }} {{ ctx.mood }}"],
            },
            {
                "name": "total",
                "kind": "python",
                "code": "result = {'sum': sum(nums), 'said': said, 'who': who, 'skipped': gone}",
                "input": {
                    "nums": "{{ numbers }}",
                    "said": "{{ echo.stdout | trim }}",
                    "gone": "{{ 'no' if skipped else 'yes' }}",
                },
            },
        ],
        input={"who": "{{ not rendered again }}"},
    )
    assert outcome.ok, outcome.error
    assert outcome.result == {
        "sum": 3,
        "said": "0,1,2 hello calm",
        "who": "{{ not rendered again }}",
        "skipped": "yes",
    }


def test_the_steps_input_is_given_to_every_task_after_the_tasks_own() -> None:
    outcome = tasks(
        [
            {"name": "a", "kind": "noop", "input": {"x": 1, "y": 1}},
            {"name": "b", "kind": "python", "code": "result = [a, x, y]", "input": {"a": "{{ a }}", "x": 2}},
        ],
        input={"y": "step"},
    )
    assert outcome.result == [{"x": 1, "y": "step"}, 2, "step"]


def test_the_first_failure_stops_the_list_and_names_the_task(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    outcome = tasks(
        [
            {"name": "first", "kind": "shell", "command": "echo fine"},
            {"name": "broken", "kind": "python", "code": "raise ValueError('bad input')"},
            {"name": "never", "kind": "shell", "command": f"touch {marker}"},
        ]
    )
    assert not outcome.ok
    assert outcome.error == "task 'broken': ValueError (line 1): bad input"
    assert outcome.output is not None
    assert (outcome.output["done"], outcome.output["task"]) == (["first"], "broken")
    assert not marker.exists()


def test_a_template_that_cannot_be_rendered_fails_naming_the_task_and_key() -> None:
    outcome = tasks(
        [{"name": "a", "kind": "noop"}, {"name": "b", "kind": "shell", "command": "echo {{ a.nope.x }}"}]
    )
    assert outcome.error == "task 'b'.command: 'dict object' has no attribute 'nope'"
    outcome = tasks([{"name": "a", "kind": "shell", "command": "echo {{ ''.__class__ }}"}])
    assert outcome.error == "task 'a'.command: access to attribute '__class__' of 'str' object is unsafe."


def test_a_rendered_task_that_its_kind_refuses_fails_readably() -> None:
    outcome = tasks([{"name": "a", "kind": "http", "url": "{{ greeting }}"}])
    assert outcome.error is not None
    assert outcome.error.startswith("task 'a': http tool: url: String should match pattern")


def test_workbook_asserts_are_checked_on_the_worker() -> None:
    ok = {"name": "w", "kind": "noop", "input": {"k": 1}, "assert": {"expects": ["k"], "returns": ["k"]}}
    assert tasks([ok]).result == {"k": 1}
    missing = {**ok, "assert": {"expects": ["k", "other"]}}
    assert tasks([missing]).error == "task 'w': assert.expects: no input key 'other'"
    no_key = {**ok, "assert": {"returns": ["answer"]}}
    assert tasks([no_key]).error == "task 'w': assert.returns: the result has no key 'answer'"


def test_the_tasks_share_the_commands_time() -> None:
    outcome = tasks(
        [
            {"name": "one", "kind": "shell", "command": "sleep 2"},
            {"name": "two", "kind": "shell", "command": "sleep 300"},
        ],
        timeout=4,
    )
    # `two` gets what `one` left of the 4 s (less than 2 s), not 4 s of its own
    assert outcome.error is not None
    assert re.match(r"task 'two': (timed out after [01](\.\d+)?s: killed|no time left)", outcome.error), (
        outcome.error
    )
    assert outcome.output is not None and outcome.output["done"] == ["one"]


def test_cancelling_the_list_kills_the_running_tasks_processes(tmp_path: Path) -> None:
    pids = tmp_path / "pids"

    async def scenario() -> None:
        tool = {
            "kind": "tasks",
            "tasks": [
                {"name": "quick", "kind": "noop"},
                {
                    "name": "long",
                    "kind": "shell",
                    "command": f"sleep 300 & echo $! > {pids}; echo $$ >> {pids}; wait",
                },
            ],
        }
        task = asyncio.ensure_future(run_tool(tool, ToolContext(60, ENV)))
        started = await asyncio.to_thread(read_pids, pids, 2)
        assert all(alive(pid) for pid in started)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        assert wait_gone(started) == []

    asyncio.run(scenario())


def test_noetls_pipeline_names_prev_task_and_results() -> None:
    outcome = tasks(
        [
            {"name": "a", "kind": "noop", "input": {"v": 1}},
            {"name": "b", "kind": "noop", "input": {"prev": "{{ _prev }}", "after": "{{ _task }}"}},
            {
                "name": "c",
                "kind": "noop",
                "input": {"a": "{{ results.a.v }}", "prev": "{{ _prev }}", "first": "{{ _attempt }}"},
            },
        ]
    )
    assert outcome.result == {"a": 1, "prev": {"prev": {"v": 1}, "after": "a"}, "first": 1}
