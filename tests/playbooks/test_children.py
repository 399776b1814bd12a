"""Sub-playbooks (`tool: {kind: playbook}`) on a real server and workers: each is a child
execution with ``parent_execution_id``; the parent's step ends with the child's result; a failed
or cancelled child fails the step; cancelling the parent cancels its children (and stops their
running tools); ``GET /api/executions?parent_execution_id=`` lists them."""

from __future__ import annotations

import uuid

import pytest

from noetl.server.queries.transitions import MAX_CHILD_DEPTH
from tests.playbooks.conftest import Playbooks, count, enters
from tests.playbooks.test_runs import processes_with, wait_gone
from tests.services import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CHILD = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: times_ten, path: tests/times_ten}
workload: {x: 0}
workflow:
  - step: start
    tool: {kind: python, code: "result = {'y': int(x) * 10}", input: {x: "{{ workload.x }}"}}
"""

PARENT = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: two_children, path: tests/two_children}
workflow:
  - step: start
    next:
      spec: {mode: inclusive}
      arcs: [{step: one}, {step: two}]
  - step: one
    tool: {kind: playbook, path: tests/times_ten, input: {x: 1}}
    next: join
  - step: two
    tool: {kind: playbook, path: tests/times_ten, input: {x: "{{ 1 + 1 }}"}}
    next: join
  - step: join
    tool:
      kind: python
      code: "result = {'sum': a['y'] + b['y']}"
      input: {a: "{{ one }}", b: "{{ two }}"}
"""


def test_a_parent_with_two_children(playbooks: Playbooks) -> None:
    playbooks.register(CHILD)
    execution = playbooks.run(PARENT)
    assert execution["status"] == "COMPLETED", execution
    steps = playbooks.steps(execution)
    assert (steps["one"]["result"], steps["two"]["result"]) == ({"y": 10}, {"y": 20})
    assert steps["join"]["result"] == {"sum": 30} and execution["result"] == {"sum": 30}
    events = playbooks.events(execution["execution_id"])
    assert enters(events) == {"start": 1, "one": 1, "two": 1, "join": 1}
    children = playbooks.children(execution["execution_id"])
    assert len(children) == 2
    assert {(c["path"], c["status"], c["parent_execution_id"]) for c in children} == {
        ("tests/times_ten", "COMPLETED", execution["execution_id"])
    }
    results = sorted(playbooks.execution(c["execution_id"])["result"]["y"] for c in children)
    assert results == [10, 20]
    for child in children:
        child_events = playbooks.events(child["execution_id"])
        assert enters(child_events) == {"start": 1} and count(child_events, "playbook.completed") == 1
    # Only these two are anyone's children; the parent itself is nobody's.
    assert playbooks.children(str(uuid.uuid4())) == []
    assert playbooks.execution(execution["execution_id"])["parent_execution_id"] is None


def test_a_failed_child_fails_the_parents_step(playbooks: Playbooks) -> None:
    playbooks.register(CHILD.replace("times_ten", "broken").replace("int(x) * 10", "int('nope')"))
    execution = playbooks.run(
        PARENT.replace("two_children", "broken_parent").replace("tests/times_ten", "tests/broken")
    )
    assert execution["status"] == "FAILED"
    assert "sub-playbook 'tests/broken'" in execution["error"] and "ValueError" in execution["error"]
    steps = playbooks.steps(execution)
    assert "join" not in steps
    # The first child to fail fails the parent, which cancels the other unless it failed already.
    statuses = sorted(c["status"] for c in playbooks.children(execution["execution_id"]))
    assert statuses in (["CANCELLED", "FAILED"], ["FAILED", "FAILED"]), statuses


def test_a_child_that_is_not_registered_fails_the_step_naming_it(playbooks: Playbooks) -> None:
    execution = playbooks.run(
        PARENT.replace("two_children", "orphan").replace("tests/times_ten", "tests/absent")
    )
    assert execution["status"] == "FAILED"
    assert "no playbook 'tests/absent'" in execution["error"], execution["error"]
    assert playbooks.children(execution["execution_id"]) == []


def test_cancelling_the_parent_cancels_its_children(playbooks: Playbooks) -> None:
    token = f"child-{uuid.uuid4().hex[:8]}"
    playbooks.register(
        f"""apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: sleeper, path: tests/sleeper}}
workflow:
  - step: start
    tool: {{kind: shell, command: "sleep 120 # {token}"}}
"""
    )
    parent = playbooks.execute(
        playbooks.register(
            PARENT.replace("two_children", "cancelled_parent").replace("tests/times_ten", "tests/sleeper")
        )["path"]
    )
    wait_until(lambda: len(processes_with(token)) >= 2, 30, "both children's shells running")
    procs = processes_with(token)
    status, body = playbooks.api("POST", f"/api/executions/{parent}/cancel", {"reason": "enough"})
    assert (status, body["status"]) == (200, "CANCELLED"), body
    children = playbooks.children(parent)
    assert len(children) == 2 and {c["status"] for c in children} == {"CANCELLED"}
    assert wait_gone(procs, 10) == []
    for child in children:
        assert count(playbooks.events(child["execution_id"]), "execution.cancelled") == 1
    assert playbooks.execution(parent)["status"] == "CANCELLED"


def test_cancelling_a_child_fails_the_parents_step(playbooks: Playbooks) -> None:
    playbooks.register(
        """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: slow, path: tests/slow}
workflow:
  - step: start
    tool: {kind: shell, command: "sleep 120"}
"""
    )
    content = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: one_child, path: tests/one_child}
workflow:
  - step: start
    tool: {kind: playbook, path: tests/slow}
"""
    parent = playbooks.execute(playbooks.register(content)["path"])
    wait_until(lambda: len(playbooks.children(parent)) == 1, 30, "the child started")
    child = playbooks.children(parent)[0]["execution_id"]
    status, _ = playbooks.api("POST", f"/api/executions/{child}/cancel", {})
    assert status == 200
    execution = playbooks.wait_ended(parent)
    assert execution["status"] == "FAILED"
    assert "sub-playbook 'tests/slow'" in execution["error"] and "CANCELLED" in execution["error"]


def test_a_playbook_that_starts_itself_fails_instead_of_nesting_forever(playbooks: Playbooks) -> None:
    content = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: itself, path: tests/itself}
workflow:
  - step: start
    tool: {kind: playbook, path: tests/itself}
"""
    execution = playbooks.run(content)
    assert execution["status"] == "FAILED"
    assert "does a playbook start itself?" in execution["error"], execution["error"]
    rows = playbooks.query(
        "SELECT status, count(*) AS n FROM noetl.executions WHERE path = 'tests/itself' GROUP BY 1"
    )
    # The root and MAX_CHILD_DEPTH nested children, every one FAILED with its child.
    assert rows == [{"status": "FAILED", "n": MAX_CHILD_DEPTH + 1}]
