"""Playbooks under `noetl run` while the server (and a worker) is SIGKILLed: a 20-step chain,
a parallel loop and a fan-in each complete with every count exact: one step.enter per step, one
call.done per step or iteration, one loop.done, reduce entered once.

supervisord restarts what was killed. The killed worker was running a step: its lease expires,
the step's command runs again (at-least-once), and the engine still records its end once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.faults.conftest import FAULT_SETTINGS, WORKERS
from tests.playbooks.conftest import enters
from tests.server.conftest import pg_fetch
from tests.services import Nats
from tests.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

STEPS = 20


def chain(steps: int) -> str:
    """start -> s1 -> ... -> s19: each python step sleeps a little and adds one to the last."""
    names = ["start", *(f"s{i}" for i in range(1, steps))]
    body = []
    for i, name in enumerate(names):
        previous = "0" if i == 0 else f"{{{{ {names[i - 1]}.n }}}}"
        step = (
            f"  - step: {name}\n"
            f"    tool:\n"
            f"      kind: python\n"
            f"      code: \"import time\\ntime.sleep(0.4)\\nresult = {{'n': int(n) + 1}}\"\n"
            f'      input: {{n: "{previous}"}}\n'
        )
        if i + 1 < len(names):
            step += f"    next: {names[i + 1]}\n"
        body.append(step)
    return (
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: chain, path: tests/chain}\nworkflow:\n"
        + "".join(body)
    )


@pytest.fixture
def stack(tmp_path: Path, pg_env: dict[str, str], nats: Nats) -> Iterator[Stack]:
    s = Stack(home=tmp_path / "home", env={**pg_env, "NATS_URL": nats.url, **FAULT_SETTINGS})
    try:
        yield s
    finally:
        s.stop()


def pid_of(stack: Stack, name: str) -> int:
    for row in stack.status():
        if row["name"] == name and row["state"] == "RUNNING" and row["pid"]:
            return int(row["pid"])
    raise AssertionError(f"{name} is not running: {stack.status()}")


def call(stack: Stack, method: str, path: str, body: Any = None, patience: float = 60) -> Any:
    """An API call that waits out the server's restart."""
    deadline = time.monotonic() + patience
    while True:
        try:
            status, answer = stack.api(method, path, body)
            if status < 500:
                assert status < 300, answer
                return answer
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{method} {path}: no answer for {patience}s"
        time.sleep(0.2)


def done_steps(stack: Stack, execution_id: str) -> int:
    steps = call(stack, "GET", f"/api/executions/{execution_id}")["steps"]
    return sum(1 for s in steps if s["status"] == "done")


def wait_done_steps(stack: Stack, execution_id: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while done_steps(stack, execution_id) < count:
        assert time.monotonic() < deadline, f"fewer than {count} steps done after {timeout}s"
        time.sleep(0.05)


def all_events(stack: Stack, execution_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        after = events[-1]["event_id"] if events else 0
        page = call(stack, "GET", f"/api/executions/{execution_id}/events?limit=500&after={after}")["items"]
        events.extend(page)
        if len(page) < 500:
            return events


def wait_ended(stack: Stack, execution_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (execution := call(stack, "GET", f"/api/executions/{execution_id}"))["status"] == "RUNNING":
        assert time.monotonic() < deadline, execution
        time.sleep(0.2)
    return dict(execution)


def kill_server(stack: Stack) -> None:
    """SIGKILL the server; return once supervisord has started a new one."""
    server = pid_of(stack, "server")
    psutil.Process(server).kill()
    deadline = time.monotonic() + 60
    while True:
        try:
            if pid_of(stack, "server") != server:
                break
        except AssertionError:
            pass  # not running right now
        assert time.monotonic() < deadline, "the server was not restarted"
        time.sleep(0.1)
    stack.wait_ready()


def kill_a_busy_worker(stack: Stack, pg_env: dict[str, str], execution_id: str, timeout: float = 30) -> int:
    """SIGKILL a worker that holds a step's command; its pid. The worker is stopped (SIGSTOP)
    before its claims are read, so what it holds then it still holds when it dies: a report it
    had sent may still end that command, but the answer hands it the next step, which it holds
    too. (The process tree cannot tell: a command forked from the warm template looks like the
    spare the template forks ahead of it.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in sorted(WORKERS):
            worker = psutil.Process(pid_of(stack, name))
            worker.suspend()
            held = pg_fetch(
                pg_env,
                "SELECT worker_id FROM noetl.commands WHERE execution_id = $1 AND status = 'claimed'",
                uuid.UUID(execution_id),
            )
            if any(row["worker_id"].endswith(f":{worker.pid}") for row in held):
                worker.kill()
                return worker.pid
            worker.resume()
        time.sleep(0.02)
    raise AssertionError("no worker held a step")


def test_twenty_steps_survive_a_server_and_a_worker_kill(stack: Stack, pg_env: dict[str, str]) -> None:
    stack.start()
    stack.wait_running({"server", *WORKERS})
    stack.wait_ready()
    call(stack, "POST", "/api/catalog/register", {"content": chain(STEPS)})
    execution_id = call(stack, "POST", "/api/execute", {"path": "tests/chain"})["execution_id"]

    wait_done_steps(stack, execution_id, 4)
    server = pid_of(stack, "server")
    psutil.Process(server).kill()
    wait_done_steps(stack, execution_id, 9)  # through the restart
    assert pid_of(stack, "server") != server

    victim = kill_a_busy_worker(stack, pg_env, execution_id)

    deadline = time.monotonic() + 180
    while (execution := call(stack, "GET", f"/api/executions/{execution_id}"))["status"] == "RUNNING":
        assert time.monotonic() < deadline, execution
        time.sleep(0.2)
    assert execution["status"] == "COMPLETED", execution
    assert execution["result"] == {"n": STEPS}
    steps = {s["name"]: s for s in execution["steps"]}
    assert len(steps) == STEPS and {s["status"] for s in steps.values()} == {"done"}
    assert [steps[name]["result"]["n"] for name in ["start", *(f"s{i}" for i in range(1, STEPS))]] == list(
        range(1, STEPS + 1)
    )
    # The killed worker's step ran again (its lease expired) ...
    assert max(s["attempts"] for s in steps.values()) >= 2, steps
    # ... but every transition happened once.
    events = all_events(stack, execution_id)
    assert enters(events) == {name: 1 for name in steps}
    kinds = [e["event_type"] for e in events]
    assert kinds.count("call.done") == STEPS and kinds.count("call.error") == 0
    assert kinds.count("playbook.completed") == 1
    stack.wait_running({"server", *WORKERS})
    assert victim not in {pid_of(stack, name) for name in WORKERS}  # supervisord started another
    assert stack.stop() == 0


LOOP_ITEMS = 300
LOOP = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: loop, path: tests/loop}
workflow:
  - step: start
    loop:
      in: "{{ workload.items }}"
      iterator: x
      spec: {mode: parallel, max_in_flight: 8}
    tool:
      kind: python
      code: "import time\\ntime.sleep(0.05)\\nresult = x + 1"
      input: {x: "{{ x }}"}
"""


def test_a_parallel_loop_survives_a_server_kill(stack: Stack) -> None:
    stack.start()
    stack.wait_running({"server", *WORKERS})
    stack.wait_ready()
    call(stack, "POST", "/api/catalog/register", {"content": LOOP})
    execution_id = call(
        stack, "POST", "/api/execute", {"path": "tests/loop", "payload": {"items": list(range(LOOP_ITEMS))}}
    )["execution_id"]

    def done() -> int:
        loops = call(stack, "GET", f"/api/executions/{execution_id}/status").get("loops", [])
        return int(loops[0]["done"]) if loops else 0

    deadline = time.monotonic() + 120
    while done() < LOOP_ITEMS // 4:
        assert time.monotonic() < deadline, "the loop does not advance"
        time.sleep(0.05)
    kill_server(stack)
    assert done() < LOOP_ITEMS, "the loop ended before the kill: the test proves nothing"

    execution = wait_ended(stack, execution_id)
    assert execution["status"] == "COMPLETED", execution
    assert execution["result"] == [x + 1 for x in range(LOOP_ITEMS)]
    events = all_events(stack, execution_id)
    calls = [e["iteration"] for e in events if e["event_type"] == "call.done"]
    assert sorted(calls) == list(range(LOOP_ITEMS))  # exactly one call.done per iteration
    kinds = [e["event_type"] for e in events]
    assert (kinds.count("loop.done"), kinds.count("call.error"), kinds.count("playbook.completed")) == (
        1,
        0,
        1,
    )
    assert enters(events) == {"start": 1}
    assert stack.stop() == 0


FAN_IN = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: fan, path: tests/fan}
workflow:
  - step: start
    next:
      spec: {mode: inclusive}
      arcs: [{step: a1}, {step: b1}]
  - step: a1
    tool: {kind: python, code: "import time\\ntime.sleep(3)\\nresult = 'a'"}
    next: reduce
  - step: b1
    tool: {kind: python, code: "import time\\ntime.sleep(1)\\nresult = 'b1'"}
    next: b2
  - step: b2
    tool: {kind: python, code: "import time\\ntime.sleep(2.5)\\nresult = 'b2'"}
    next: reduce
  - step: reduce
    tool: {kind: python, code: "result = [a, b]", input: {a: "{{ a1 }}", b: "{{ b2 }}"}}
"""


def test_a_fan_in_survives_a_server_kill(stack: Stack) -> None:
    stack.start()
    stack.wait_running({"server", *WORKERS})
    stack.wait_ready()
    call(stack, "POST", "/api/catalog/register", {"content": FAN_IN})
    execution_id = call(stack, "POST", "/api/execute", {"path": "tests/fan"})["execution_id"]
    deadline = time.monotonic() + 60
    while "b2" not in {
        e["node_name"] for e in all_events(stack, execution_id) if e["event_type"] == "step.enter"
    }:
        assert time.monotonic() < deadline, "b2 never entered"
        time.sleep(0.05)
    kill_server(stack)  # a1 and b2 are running; both end while (or just after) the server is down
    execution = wait_ended(stack, execution_id)
    assert execution["status"] == "COMPLETED", execution
    assert execution["result"] == ["a", "b2"]
    events = all_events(stack, execution_id)
    assert enters(events) == {"start": 1, "a1": 1, "b1": 1, "b2": 1, "reduce": 1}
    kinds = [e["event_type"] for e in events]
    assert (kinds.count("call.done"), kinds.count("playbook.completed")) == (4, 1)
    assert stack.stop() == 0
