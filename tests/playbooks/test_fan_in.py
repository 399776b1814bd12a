"""Fan-out and fan-in on two workers with one slot each: `start` fans out (inclusive) to two
branches of different lengths that both lead to `reduce`; `reduce` enters exactly once, after the
last branch ended, with both branches' results, also when the two branches' last steps end in the
same millisecond on the two workers (both sleep until the same wall-clock instant).

The join is decided under the execution's row lock: the second report waits for the first's
transaction, then sees the first branch done."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.playbooks.conftest import Playbooks, cluster, count, enters
from tests.services import Postgres

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# Each branch's last step sleeps until its `at` (a wall-clock time in the payload), then returns.
UNTIL = "import time\\ntime.sleep(max(0.0, float(at) - time.time()))\\nresult = {'branch': name}"

FAN_IN = f"""apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: fan_in, path: tests/fan_in}}
workload: {{at_a: 0, at_b: 0}}
workflow:
  - step: start
    next:
      spec: {{mode: inclusive}}
      arcs: [{{step: a1}}, {{step: b1}}]
  - step: a1
    tool: {{kind: python, code: "{UNTIL}", input: {{at: "{{{{ workload.at_a }}}}", name: a}}}}
    next: reduce
  - step: b1
    tool: {{kind: python, code: "result = {{'first': True}}"}}
    next: b2
  - step: b2
    tool: {{kind: python, code: "{UNTIL}", input: {{at: "{{{{ workload.at_b }}}}", name: b}}}}
    next: reduce
  - step: reduce
    tool:
      kind: python
      code: "result = {{'seen': sorted([a['branch'], b['branch']]), 'first': first['first']}}"
      input: {{a: "{{{{ a1 }}}}", b: "{{{{ b2 }}}}", first: "{{{{ b1 }}}}"}}
"""


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


def test_reduce_runs_once_after_the_last_branch(single_slots: Playbooks) -> None:
    path = single_slots.register(FAN_IN)["path"]
    # The short branch is the slow one: a1 ends well after b2 ...
    late = single_slots.wait_ended(single_slots.execute(path, {"at_a": time.time() + 2.0}))
    events = check_one_join(single_slots, late)
    assert position(events, "step.exit", "a1") > position(events, "step.exit", "b2")
    # ... and the long one: b2 ends well after a1.
    late = single_slots.wait_ended(single_slots.execute(path, {"at_b": time.time() + 2.0}))
    events = check_one_join(single_slots, late)
    assert position(events, "step.exit", "b2") > position(events, "step.exit", "a1")


def test_branches_ending_in_the_same_millisecond_on_two_workers_join_once(single_slots: Playbooks) -> None:
    path = single_slots.register(FAN_IN)["path"]
    for _ in range(5):
        at = time.time() + 1.5
        execution = single_slots.wait_ended(single_slots.execute(path, {"at_a": at, "at_b": at}))
        check_one_join(single_slots, execution)
        ran = single_slots.query(
            """
            SELECT step, worker_id, finished_at FROM noetl.commands
            WHERE execution_id = $1::uuid AND step IN ('a1', 'b2') ORDER BY step
            """,
            execution["execution_id"],
        )
        # One slot per worker: the two sleeping steps ran on the two workers at once.
        assert len({r["worker_id"] for r in ran}) == 2, ran
