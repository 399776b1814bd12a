"""Loops on a real server and workers: each iteration is its own command; results come back in
item order; sequential runs one at a time, parallel at most ``max_in_flight``; a failed
iteration fails the step; an empty list finishes at once; progress shows in ``/status``.

The counts come from the event log and the commands table, not from the final status only."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from tests.playbooks.conftest import Playbooks, count, enters

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

HEAD = """apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: {name}
  path: tests/{name}
workflow:
"""


def doubling(name: str, spec: str) -> str:
    """start -> each (x * 2 per item of workload.items, iterator x) -> total."""
    return HEAD.format(name=name) + (
        "  - step: start\n"
        "    next: each\n"
        "  - step: each\n"
        f'    loop: {{in: "{{{{ workload.items }}}}", iterator: x, spec: {spec}}}\n'
        "    tool:\n"
        "      kind: python\n"
        "      code: \"result = {'x': x, 'double': x * 2, 'index': index, 'same': same}\"\n"
        '      input: {x: "{{ x }}", index: "{{ loop_index }}",\n'
        '              same: "{{ iter.x == x and iter._index == loop_index }}"}\n'
        "    next: total\n"
        "  - step: total\n"
        "    tool:\n"
        "      kind: python\n"
        "      code: \"result = {'n': len(r), 'sum': sum(i['double'] for i in r)}\"\n"
        '      input: {r: "{{ each }}"}\n'
    )


def echoing(name: str, spec: str) -> str:
    """Like ``doubling`` with a shell tool (a python tool costs ~0.2 s of CPU a run: 2,000 of them
    would measure the interpreter's start-up, not the loop)."""
    return HEAD.format(name=name) + (
        "  - step: start\n"
        "    next: each\n"
        "  - step: each\n"
        f'    loop: {{in: "{{{{ workload.items }}}}", iterator: x, spec: {spec}}}\n'
        '    tool: {kind: shell, command: "echo {{ x * 2 }}"}\n'
        "    next: total\n"
        "  - step: total\n"
        "    tool:\n"
        "      kind: python\n"
        "      code: \"result = {'n': len(r), 'sum': sum(int(i['stdout']) for i in r)}\"\n"
        '      input: {r: "{{ each }}"}\n'
    )


def in_flight_at_most(playbooks: Playbooks, execution_id: str, step: str) -> int:
    """The most commands of ``step`` that existed unfinished at the same moment (each command's
    creation is a moment to look at)."""
    rows = playbooks.query(
        """
        SELECT max(n) AS most FROM (
            SELECT (SELECT count(*) FROM noetl.commands o
                    WHERE o.execution_id = c.execution_id AND o.step = c.step
                      AND o.created_at <= c.created_at
                      AND (o.finished_at IS NULL OR o.finished_at > c.created_at)) AS n
            FROM noetl.commands c WHERE c.execution_id = $1::uuid AND c.step = $2
        ) counts
        """,
        execution_id,
        step,
    )
    return int(rows[0]["most"])


def iteration_events(events: list[dict[str, Any]], kind: str, step: str) -> list[int]:
    return sorted(e["iteration"] for e in events if e["event_type"] == kind and e["node_name"] == step)


def test_a_sequential_loop_runs_one_iteration_at_a_time_in_item_order(playbooks: Playbooks) -> None:
    items = [5, 3, 8, 1]
    path = playbooks.register(doubling("sequential", "{mode: sequential}"))["path"]
    execution = playbooks.wait_ended(playbooks.execute(path, {"items": items}))
    assert execution["status"] == "COMPLETED", execution
    steps = playbooks.steps(execution)
    assert steps["each"]["result"] == [
        {"x": x, "double": 2 * x, "index": i, "same": True} for i, x in enumerate(items)
    ]
    assert steps["total"]["result"] == {"n": 4, "sum": 34}
    assert steps["each"]["iterations"] == {"total": 4, "done": 4, "failed": 0, "running": 0}
    events = playbooks.events(execution["execution_id"])
    assert enters(events) == {"start": 1, "each": 1, "total": 1}
    assert iteration_events(events, "call.done", "each") == [0, 1, 2, 3]
    assert count(events, "loop.done", "each") == 1 and count(events, "call.error") == 0
    # loop.done comes after the last iteration, and before the step's arcs are followed.
    kinds = [(e["event_type"], e["node_name"]) for e in events]
    assert kinds.index(("loop.done", "each")) > max(
        i for i, k in enumerate(kinds) if k == ("call.done", "each")
    )
    assert kinds.index(("loop.done", "each")) < kinds.index(("step.enter", "total"))
    commands = playbooks.query(
        """
        SELECT iteration, created_at, finished_at FROM noetl.commands
        WHERE execution_id = $1::uuid AND step = 'each' ORDER BY iteration
        """,
        execution["execution_id"],
    )
    assert [c["iteration"] for c in commands] == [0, 1, 2, 3]
    # Each iteration's command was created only once the previous one had finished.
    assert all(b["created_at"] >= a["finished_at"] for a, b in itertools.pairwise(commands))


def test_a_parallel_loop_keeps_at_most_max_in_flight_running(playbooks: Playbooks) -> None:
    items = list(range(40))
    path = playbooks.register(doubling("parallel", "{mode: parallel, max_in_flight: 3}"))["path"]
    execution = playbooks.wait_ended(playbooks.execute(path, {"items": items}))
    assert execution["status"] == "COMPLETED", execution
    steps = playbooks.steps(execution)
    assert [r["double"] for r in steps["each"]["result"]] == [2 * x for x in items]
    assert steps["total"]["result"] == {"n": 40, "sum": 2 * sum(items)}
    events = playbooks.events(execution["execution_id"])
    assert iteration_events(events, "call.done", "each") == items
    assert enters(events) == {"start": 1, "each": 1, "total": 1}
    most = in_flight_at_most(playbooks, execution["execution_id"], "each")
    assert 1 < most <= 3


def test_an_empty_list_finishes_the_step_at_once_with_an_empty_result(playbooks: Playbooks) -> None:
    path = playbooks.register(doubling("empty", "{mode: parallel}"))["path"]
    execution = playbooks.wait_ended(playbooks.execute(path, {"items": []}))
    assert execution["status"] == "COMPLETED", execution
    steps = playbooks.steps(execution)
    assert (steps["each"]["result"], steps["total"]["result"]) == ([], {"n": 0, "sum": 0})
    events = playbooks.events(execution["execution_id"])
    assert count(events, "call.done", "each") == 0 and count(events, "loop.done", "each") == 1
    assert playbooks.query(
        "SELECT count(*) AS n FROM noetl.commands WHERE execution_id = $1::uuid AND step = 'each'",
        execution["execution_id"],
    ) == [{"n": 0}]


def test_a_failed_iteration_fails_the_step_and_the_execution(playbooks: Playbooks) -> None:
    content = HEAD.format(name="divide") + (
        "  - step: start\n"
        "    loop: {in: [4, 0, 2], iterator: d, spec: {mode: sequential}}\n"
        '    tool: {kind: python, code: "result = 8 // d", input: {d: "{{ d }}"}}\n'
        "    next: never\n"
        "  - step: never\n"
        "    tool: {kind: noop}\n"
    )
    execution = playbooks.run(content)
    assert execution["status"] == "FAILED"
    assert "step 'start' failed" in execution["error"] and "ZeroDivisionError" in execution["error"]
    steps = playbooks.steps(execution)
    assert steps["start"]["status"] == "failed" and "never" not in steps
    events = playbooks.events(execution["execution_id"])
    assert iteration_events(events, "call.done", "start") == [0]
    assert iteration_events(events, "call.error", "start") == [1]
    assert count(events, "loop.done") == 0
    # Sequential: the third item was never dispatched.
    assert playbooks.query(
        "SELECT count(*) AS n FROM noetl.commands WHERE execution_id = $1::uuid", execution["execution_id"]
    ) == [{"n": 2}]


def test_two_thousand_items_fifty_in_flight(playbooks: Playbooks) -> None:
    """2,000 iterations with max_in_flight 50: exactly 2,000 call.done events for the step, the
    results in item order, never more than 50 commands in flight, and the progress visible in
    /status while it runs (without the items in any answer)."""
    n = 2000
    path = playbooks.register(echoing("many", "{mode: parallel, max_in_flight: 50}"))["path"]
    execution_id = playbooks.execute(path, {"items": list(range(n))})
    seen: dict[str, Any] = {}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        _, status = playbooks.api("GET", f"/api/executions/{execution_id}/status")
        loops = {loop["step"]: loop for loop in status.get("loops", [])}
        if "each" in loops and 0 < loops["each"]["done"] < n:
            seen = loops["each"]
            break
        assert status["status"] == "RUNNING", status
        time.sleep(0.05)
    assert seen["total"] == n and 0 < seen["running"] <= 50, seen
    execution = playbooks.wait_ended(execution_id, timeout=300)
    assert execution["status"] == "COMPLETED", execution["error"]
    steps = playbooks.steps(execution)
    assert [r["stdout"] for r in steps["each"]["result"]] == [f"{2 * x}\n" for x in range(n)]
    assert steps["total"]["result"] == {"n": n, "sum": n * (n - 1)}
    events = playbooks.events(execution_id)
    assert count(events, "call.done", "each") == n
    assert iteration_events(events, "call.done", "each") == list(range(n))
    assert count(events, "call.error") == 0 and count(events, "loop.done", "each") == 1
    assert enters(events) == {"start": 1, "each": 1, "total": 1}
    assert in_flight_at_most(playbooks, execution_id, "each") <= 50
