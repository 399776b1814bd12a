"""Playbook runs on a real server and workers: failures name the step, a template cannot escape
the sandbox, the status and events calls, and cancel (a running shell step's process group is
killed within 2 s; nothing after it runs)."""

from __future__ import annotations

import time
import uuid

import psutil
import pytest

from tests.playbooks.conftest import Playbooks, enters
from tests.services import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

HEAD = """apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: {name}
  path: tests/{name}
workflow:
"""


def processes_with(token: str) -> list[psutil.Process]:
    """The shell whose command line holds ``token``, and everything below it."""
    for proc in psutil.process_iter(["cmdline"]):
        if token in " ".join(proc.info["cmdline"] or []):
            try:
                return [proc, *proc.children(recursive=True)]
            except psutil.NoSuchProcess:  # it ended while we looked
                return []
    return []


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (a killed process whose new parent has not reaped it yet is a zombie:
    it runs nothing any more)."""
    found = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` seconds for ``procs`` to end; those still running."""
    deadline = time.monotonic() + timeout
    while alive(procs) and time.monotonic() < deadline:
        time.sleep(0.02)
    return alive(procs)


def test_a_failed_step_fails_the_execution_naming_it(playbooks: Playbooks) -> None:
    content = (
        HEAD.format(name="fails")
        + """  - step: start
    tool: {kind: python, code: "result = 1"}
    next: boom
  - step: boom
    tool: {kind: python, code: "raise ValueError('no good')"}
    next: never
  - step: never
    tool: {kind: noop}
"""
    )
    execution = playbooks.run(content)
    assert execution["status"] == "FAILED"
    assert execution["error"].startswith("step 'boom' failed: ValueError") and "no good" in execution["error"]
    steps = playbooks.steps(execution)
    assert (steps["start"]["status"], steps["boom"]["status"]) == ("done", "failed")
    assert "no good" in steps["boom"]["error"] and steps["boom"]["attempts"] == 1
    assert "never" not in steps
    events = playbooks.events(execution["execution_id"])
    assert enters(events) == {"start": 1, "boom": 1}
    kinds = [e["event_type"] for e in events]
    assert kinds.count("call.done") == 1 and kinds.count("call.error") == 1
    assert kinds[-1] == "playbook.failed"
    error = next(e for e in events if e["event_type"] == "call.error")
    assert (error["node_name"], "no good" in error["error"]) == ("boom", True)
    _, status = playbooks.api("GET", f"/api/executions/{execution['execution_id']}/status")
    assert status["progress"] == {
        "total_steps": 3,
        "completed_steps": 1,
        "running_steps": 0,
        "failed_steps": 1,
    }
    assert (status["is_cancelled"], status["current_step"]) == (False, "boom")


def test_a_failure_stops_the_other_branch(playbooks: Playbooks) -> None:
    token = uuid.uuid4().hex
    content = (
        HEAD.format(name="branches")
        + f"""  - step: start
    next:
      spec: {{mode: inclusive}}
      arcs: [{{step: slow}}, {{step: quick}}]
  - step: slow
    tool: {{kind: shell, command: "sleep 300 # {token}"}}
  - step: quick
    tool: {{kind: python, code: "raise RuntimeError('quick failed')"}}
"""
    )
    path = playbooks.register(content)["path"]
    # quick fails at once, possibly before slow's shell started: either way slow never finishes.
    execution = playbooks.wait_ended(playbooks.execute(path))
    assert execution["status"] == "FAILED" and "quick" in execution["error"]
    steps = playbooks.steps(execution)
    assert steps["quick"]["status"] == "failed"
    assert steps["slow"]["status"] == "cancelled"
    wait_until(lambda: not alive(processes_with(token)), 10, "the slow branch's shell killed")


def test_sandbox_escape_is_refused(playbooks: Playbooks) -> None:
    content = (
        HEAD.format(name="escape")
        + """  - step: start
    tool:
      kind: noop
      input:
        x: "{{ ''.__class__.__mro__[1].__subclasses__() }}"
"""
    )
    execution = playbooks.run(content)
    assert execution["status"] == "FAILED"
    assert "unsafe" in execution["error"] and "__class__" in execution["error"]
    assert "subprocess" not in str(execution)  # no class list leaked into any answer


def test_cancel_kills_a_running_shell_step_within_two_seconds(playbooks: Playbooks) -> None:
    token = uuid.uuid4().hex
    content = (
        HEAD.format(name="cancel")
        + f"""  - step: start
    tool: {{kind: shell, command: "sleep 300 & sleep 301 & wait # {token}"}}
    next: after
  - step: after
    tool: {{kind: noop}}
"""
    )
    path = playbooks.register(content)["path"]
    execution_id = playbooks.execute(path)
    wait_until(lambda: len(processes_with(token)) == 3, 30, "the shell and its two sleeps running")
    running = processes_with(token)
    _, status = playbooks.api("GET", f"/api/executions/{execution_id}/status")
    assert status["current_step"] == "start" and status["progress"]["running_steps"] == 1

    answer = playbooks.api("POST", f"/api/executions/{execution_id}/cancel", {"reason": "test"})
    assert answer == (200, {"execution_id": execution_id, "status": "CANCELLED"})
    left = wait_gone(running, timeout=2.0)
    assert left == [], f"still running 2 s after the cancel: {left}"

    execution = playbooks.execution(execution_id)
    assert execution["status"] == "CANCELLED"
    assert playbooks.steps(execution)["start"]["status"] == "cancelled"
    events = playbooks.events(execution_id)
    assert [e["event_type"] for e in events].count("execution.cancelled") == 1
    assert enters(events) == {"start": 1}  # `after` never ran
    _, status = playbooks.api("GET", f"/api/executions/{execution_id}/status")
    assert status["is_cancelled"] is True
    # A second cancel: the execution already ended.
    again = playbooks.api("POST", f"/api/executions/{execution_id}/cancel", {})
    assert again[0] == 409 and "CANCELLED" in again[1]["detail"]


def test_cancel_a_submitted_command(playbooks: Playbooks) -> None:
    token = uuid.uuid4().hex
    execution_id, _ = playbooks.submit({"kind": "shell", "command": f"sleep 300 # {token}"})
    wait_until(lambda: processes_with(token), 30, "the command running")
    running = processes_with(token)
    assert playbooks.api("POST", f"/api/executions/{execution_id}/cancel", {})[0] == 200
    assert wait_gone(running, timeout=2.0) == []
    view = playbooks.execution(execution_id)
    assert (view["status"], view["commands"][0]["status"]) == ("CANCELLED", "cancelled")


def test_events_page_in_order(playbooks: Playbooks) -> None:
    steps = "".join(
        f"  - step: {name}\n    tool: {{kind: noop, input: {{i: {i}}}}}\n    next: s{i + 1}\n"
        for i, name in enumerate(["start", "s1", "s2", "s3"])
    ).replace("next: s4\n", "")
    execution = playbooks.run(HEAD.format(name="paged") + steps)
    assert execution["status"] == "COMPLETED" and execution["result"] == {"i": 3}
    eid = execution["execution_id"]
    everything = playbooks.events(eid)
    ids = [e["event_id"] for e in everything]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    first = playbooks.api("GET", f"/api/executions/{eid}/events?limit=3")[1]["items"]
    rest = playbooks.api("GET", f"/api/executions/{eid}/events?after={first[-1]['event_id']}")[1]["items"]
    assert first + rest == everything
    assert set(everything[0]) == {
        "event_id",
        "event_type",
        "node_name",
        "status",
        "created_at",
        "result",
        "error",
        "iteration",
        "attempt",
    }
    assert enters(everything) == {"start": 1, "s1": 1, "s2": 1, "s3": 1}
    missing = playbooks.api("GET", f"/api/executions/{uuid.uuid4()}/events")
    assert missing[0] == 404
