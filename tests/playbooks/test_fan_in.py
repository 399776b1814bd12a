"""Fan-out and fan-in on two workers with one slot each: `start` fans out (inclusive) to two
branches of different lengths that both lead to `reduce`; `reduce` enters exactly once, after the
last branch ended, with both branches' results, also when the two branches' last steps end in the
same millisecond on the two workers (both meet while running, then sleep until the same
wall-clock instant).

The join is decided under the execution's row lock: the second report waits for the first's
transaction, then sees the first branch done."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.playbooks.conftest import Playbooks, cluster, count, enters
from tests.services import Postgres

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# Each branch's last step waits for its `gate` file (when given) to exist, then returns: the test
# lets one branch end only once the other has ended. (Sleeping until a wall-clock time fixed at
# submission instead let the other branch miss it on a loaded machine.)
GATED = (
    "import os, time\\n"
    "deadline = time.monotonic() + 60\\n"
    "while gate and not os.path.exists(gate) and time.monotonic() < deadline:\\n"
    "    time.sleep(0.01)\\n"
    "if gate and not os.path.exists(gate):\\n"
    "    raise RuntimeError('never let through')\\n"
    "result = {'branch': name}"
)
# Each branch's last step leaves its mark in `meet` and waits for the other's: both are running
# (one slot per worker: on the two workers), whenever each was claimed. Then both sleep until the
# same instant, the later mark's time + 0.3 s, which both read once both marks exist. (A time
# fixed at submission instead let a slow start of the long branch miss it on a loaded machine:
# b2 then ran after a1, on either worker.)
MEET = (
    "import os, time\\n"
    "open(os.path.join(meet, name), 'w').close()\\n"
    "deadline = time.monotonic() + 60\\n"
    "while len(os.listdir(meet)) < 2 and time.monotonic() < deadline:\\n"
    "    time.sleep(0.005)\\n"
    "marks = [os.stat(os.path.join(meet, mark)).st_mtime for mark in os.listdir(meet)]\\n"
    "if len(marks) < 2:\\n"
    "    raise RuntimeError('the other branch never started')\\n"
    "time.sleep(max(0.0, max(marks) + 0.3 - time.time()))\\n"
    "result = {'branch': name}"
)


def fan_in(name: str, last: str, a: str, b: str) -> str:
    """The playbook: ``last`` is the code of each branch's last step, ``a`` and ``b`` the template
    of its `gate` (GATED) or `meet` (MEET) input."""
    return f"""apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: {name}, path: tests/{name}}}
workload: {{gate_a: "", gate_b: "", meet: ""}}
workflow:
  - step: start
    next:
      spec: {{mode: inclusive}}
      arcs: [{{step: a1}}, {{step: b1}}]
  - step: a1
    tool: {{kind: python, code: "{last}", input: {{{a}, name: a}}}}
    next: reduce
  - step: b1
    tool: {{kind: python, code: "result = {{'first': True}}"}}
    next: b2
  - step: b2
    tool: {{kind: python, code: "{last}", input: {{{b}, name: b}}}}
    next: reduce
  - step: reduce
    tool:
      kind: python
      code: "result = {{'seen': sorted([a['branch'], b['branch']]), 'first': first['first']}}"
      input: {{a: "{{{{ a1 }}}}", b: "{{{{ b2 }}}}", first: "{{{{ b1 }}}}"}}
"""


FAN_IN = fan_in("fan_in", GATED, 'gate: "{{ workload.gate_a }}"', 'gate: "{{ workload.gate_b }}"')
MEETING = fan_in("fan_in_meet", MEET, 'meet: "{{ workload.meet }}"', 'meet: "{{ workload.meet }}"')


@pytest.fixture(scope="module")
def single_slots(pg_server: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Playbooks]:
    """Two workers with one slot each: the two branches' last steps run on different workers."""
    with cluster(pg_server, tmp_path_factory.mktemp("fan_in"), concurrency=1) as found:
        yield found


def position(events: list[dict[str, Any]], kind: str, step: str) -> int:
    return next(i for i, e in enumerate(events) if (e["event_type"], e["node_name"]) == (kind, step))


def check_one_join(playbooks: Playbooks, execution: dict[str, Any]) -> list[dict[str, Any]]:
    assert execution["status"] == "COMPLETED", execution
    steps = playbooks.steps(execution)
    assert steps["reduce"]["result"] == {"seen": ["a", "b"], "first": True}
    events = playbooks.events(execution["execution_id"])
    assert enters(events) == {"start": 1, "a1": 1, "b1": 1, "b2": 1, "reduce": 1}
    assert count(events, "call.done") == 4 and count(events, "step.exit") == 5
    # reduce entered after both branches ended.
    joined = position(events, "step.enter", "reduce")
    assert joined > position(events, "step.exit", "a1") and joined > position(events, "step.exit", "b2")
    assert count(events, "playbook.completed") == 1
    return events


def ended_after_the_other(
    playbooks: Playbooks, path: str, held: str, other: str, gate: Path
) -> dict[str, Any]:
    """Run the playbook with the branch whose gate is ``held`` (gate_a, gate_b) waiting at ``gate``
    until ``other``'s step has ended."""
    execution_id = playbooks.execute(path, {held: str(gate)})
    deadline = time.monotonic() + 60
    while playbooks.steps(playbooks.execution(execution_id)).get(other, {}).get("status") != "done":
        assert time.monotonic() < deadline, playbooks.execution(execution_id)
        time.sleep(0.05)
    gate.touch()
    return playbooks.wait_ended(execution_id)


def test_reduce_runs_once_after_the_last_branch(single_slots: Playbooks, tmp_path: Path) -> None:
    path = single_slots.register(FAN_IN)["path"]
    # The short branch is the slow one: a1 ends after b2 ...
    late = ended_after_the_other(single_slots, path, "gate_a", "b2", tmp_path / "a1")
    events = check_one_join(single_slots, late)
    assert position(events, "step.exit", "a1") > position(events, "step.exit", "b2")
    # ... and the long one: b2 ends after a1.
    late = ended_after_the_other(single_slots, path, "gate_b", "a1", tmp_path / "b2")
    events = check_one_join(single_slots, late)
    assert position(events, "step.exit", "b2") > position(events, "step.exit", "a1")


def test_branches_ending_in_the_same_millisecond_on_two_workers_join_once(
    single_slots: Playbooks, tmp_path: Path
) -> None:
    path = single_slots.register(MEETING)["path"]
    for i in range(5):
        meet = tmp_path / f"meet{i}"
        meet.mkdir()
        execution = single_slots.wait_ended(single_slots.execute(path, {"meet": str(meet)}))
        check_one_join(single_slots, execution)
        assert sorted(p.name for p in meet.iterdir()) == ["a", "b"]
        ran = single_slots.query(
            """
            SELECT step, worker_id, finished_at FROM noetl.commands
            WHERE execution_id = $1::uuid AND step IN ('a1', 'b2') ORDER BY step
            """,
            execution["execution_id"],
        )
        # One slot per worker: the two sleeping steps ran on the two workers at once.
        assert len({r["worker_id"] for r in ran}) == 2, ran
