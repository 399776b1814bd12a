"""The playbook engine under the same knife: kills between a step's end and the next step's
dispatch, during a fan-in, and in a parallel loop.

Promised outcome, whatever is killed: every transition is recorded once (one ``step.enter`` per
step, one ``call.done`` per step or iteration, ``reduce`` entered once after both branches), the
execution completes, and each step's side effect happened once, or twice for a step whose worker
died with it (its lease expired; the ledger and ``lost_leases`` agree).
"""

from __future__ import annotations

import uuid

import pytest

from tests.faults.crash import crash_nats
from tests.faults.rig import Rig
from tests.faults.steps import judge_steps, playbook, run, step, wait_ended
from tests.server.conftest import pg_fetch
from tests.services import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

LEASE = 3  # a killed worker's lease expires soon
LONG_LEASE = 20  # longer than a restart of the server: for the server's kills
SECOND_WORKER = "worker_01"

CHAIN = playbook("faults/chain", [step("start", 1, "b"), step("b", 0, "c"), step("c")])
SLOW_B = playbook("faults/slow_b", [step("start", 0, "b"), step("b", 3, "c"), step("c")])

FAN_IN = playbook(
    "faults/fan_in",
    [
        {"step": "start", "next": {"spec": {"mode": "inclusive"}, "arcs": [{"step": "a1"}, {"step": "b1"}]}},
        step("a1", 3, "reduce"),
        step("b1", 0, "b2"),
        step("b2", 3, "reduce"),
        step("reduce"),
    ],
)

ITEMS = 12
LOOP = playbook(
    "faults/loop",
    [
        {
            **step("start", 2, ledger_name="start.{{ loop_index }}"),
            "loop": {
                "in": "{{ workload.items }}",
                "iterator": "x",
                "spec": {"mode": "parallel", "max_in_flight": 4},
            },
        }
    ],
)


def test_server_killed_between_a_step_end_and_the_next_dispatch(rig: Rig) -> None:
    # Without chained dispatch: the next step goes out through the outbox (with it, the worker
    # takes it in the answer: the two tests below).
    rig.use_lease(LONG_LEASE, NOETL_WORKER_CHAIN="false")
    execution_id, token = run(rig, CHAIN)
    rig.ledger.wait_runs(f"{token}.start", 1, timeout=60)
    held = rig.gate.hold("/events", "request", "completed")
    held.wait(60)
    # NATS away first, so that the next step's notice cannot leave before the server dies.
    down = rig.cluster.output("server").count("nats: disconnected")
    crash_nats(rig.nats)
    wait_until(
        lambda: rig.cluster.output("server").count("nats: disconnected") > down, 45, "the server noticing"
    )
    reports = rig.gate.count("/events", "completed")
    held.release()
    wait_until(lambda: rig.gate.count("/events", "completed") > reports, 60, "start's end committed")
    (b,) = pg_fetch(
        rig.cluster.env,
        "SELECT status, published_at FROM noetl.commands WHERE execution_id = $1 AND step = 'b'",
        uuid.UUID(execution_id),
    )
    assert (b["status"], b["published_at"]) == ("pending", None)  # decided, not dispatched
    rig.kill_server()
    rig.nats.start()
    rig.cluster.start_server()  # its outbox finds b unpublished and sends it

    view = wait_ended(rig, execution_id)
    assert view["status"] == "COMPLETED", view
    verdicts = judge_steps(rig, execution_id, token)
    assert {name: v.runs for name, v in verdicts.items()} == {"start": 1, "b": 1, "c": 1}


def handed_now(rig: Rig, execution_id: str, step: str) -> bool:
    """The step's command is claimed in a report's answer (chained dispatch), never published."""
    rows = pg_fetch(
        rig.cluster.env,
        "SELECT status, claim_request, published_at FROM noetl.commands "
        "WHERE execution_id = $1 AND step = $2",
        uuid.UUID(execution_id),
        step,
    )
    return bool(
        rows
        and rows[0]["status"] == "claimed"
        and (rows[0]["claim_request"] or "").startswith("chain ")
        and rows[0]["published_at"] is None
    )


def test_server_killed_before_the_answer_that_hands_the_next_step(rig: Rig) -> None:
    rig.use_lease(LONG_LEASE)
    execution_id, token = run(rig, CHAIN)
    held = rig.gate.hold("/events", "answer", "completed")
    held.wait(60)  # start's end committed, b claimed for the worker: the answer is held
    assert handed_now(rig, execution_id, "b")
    rig.kill_server()
    held.drop()
    rig.cluster.start_server()  # the report is retried: a repeat, answered with b again

    view = wait_ended(rig, execution_id)
    assert view["status"] == "COMPLETED", view
    verdicts = judge_steps(rig, execution_id, token)
    assert {name: (v.runs, v.lost_leases) for name, v in verdicts.items()} == {
        "start": (1, 0),
        "b": (1, 0),
        "c": (1, 0),
    }


def test_worker_killed_holding_a_handed_step(rig: Rig) -> None:
    execution_id, token = run(rig, SLOW_B)
    rig.ledger.wait_runs(f"{token}.b", 1, timeout=60)
    assert handed_now(rig, execution_id, "b")  # b came in start's answer, and is running
    rig.kill_worker()
    rig.start_worker()  # the reaper re-queues b at its lease's end and publishes it

    view = wait_ended(rig, execution_id)
    assert view["status"] == "COMPLETED", view
    verdicts = judge_steps(rig, execution_id, token)
    assert {name: (v.runs, v.lost_leases) for name, v in verdicts.items()} == {
        "start": (1, 0),
        "b": (2, 1),
        "c": (1, 0),
    }


def test_worker_killed_between_a_step_end_and_its_report(rig: Rig) -> None:
    execution_id, token = run(rig, CHAIN)
    rig.ledger.wait_runs(f"{token}.start", 1, timeout=60)
    held = rig.gate.hold("/events", "request", "completed")
    held.wait(60)
    rig.kill_worker()
    held.drop()
    rig.start_worker()

    view = wait_ended(rig, execution_id)
    assert view["status"] == "COMPLETED", view
    verdicts = judge_steps(rig, execution_id, token)
    # start ran again after its lease expired; the engine still went on from it once.
    assert {name: (v.runs, v.lost_leases) for name, v in verdicts.items()} == {
        "start": (2, 1),
        "b": (1, 0),
        "c": (1, 0),
    }


def test_worker_killed_during_a_fan_in(rig: Rig) -> None:
    execution_id, token = run(rig, FAN_IN)
    rig.ledger.wait_runs(f"{token}.a1", 1, timeout=60)
    rig.ledger.wait_runs(f"{token}.b2", 1, timeout=60)  # both branches' last steps are running
    rig.kill_worker()
    rig.start_worker()

    view = wait_ended(rig, execution_id)
    assert view["status"] == "COMPLETED", view
    verdicts = judge_steps(rig, execution_id, token)
    assert {name: v.runs for name, v in verdicts.items()} == {"a1": 2, "b1": 1, "b2": 2, "reduce": 1}
    assert verdicts["a1"].lost_leases == verdicts["b2"].lost_leases == 1


def test_server_killed_with_both_branch_ends_in_flight(rig: Rig) -> None:
    # Two workers of one slot each: a1 runs on one, b1 then b2 on the other, so the two ends travel
    # in two requests at once (a worker sends the ends its own jobs report together in one).
    rig.use_lease(LONG_LEASE, NOETL_WORKER_CONCURRENCY="1")
    rig.start_worker(SECOND_WORKER, NOETL_WORKER_CONCURRENCY="1")
    try:
        execution_id, token = run(rig, FAN_IN)
        rig.ledger.wait_runs(f"{token}.b2", 1, timeout=60)  # b1 has ended; a1 and b2 are running
        first = rig.gate.hold("/events", "request", "completed")
        second = rig.gate.hold("/events", "request", "completed")
        ends = {first.wait(60)["command_id"], second.wait(60)["command_id"]}
        rig.kill_server()
        first.drop()
        second.drop()
        rig.cluster.start_server()  # both reports are retried, and the join decided once

        view = wait_ended(rig, execution_id)
    finally:
        rig.kill_worker(SECOND_WORKER)
    assert view["status"] == "COMPLETED", view
    assert len(ends) == 2  # both branches' ends were held, each in its own request
    verdicts = judge_steps(rig, execution_id, token)
    assert {name: v.runs for name, v in verdicts.items()} == {"a1": 1, "b1": 1, "b2": 1, "reduce": 1}


def test_worker_and_server_killed_in_a_parallel_loop(rig: Rig) -> None:
    execution_id, token = run(rig, LOOP, {"items": list(range(ITEMS))})

    def ran() -> int:
        return sum(rig.ledger.runs(f"{token}.start.{i}") for i in range(ITEMS))

    wait_until(lambda: ran() >= 5, 120, "a second round of iterations begun")
    rig.kill_worker()  # with up to 4 iterations running
    rig.start_worker()
    wait_until(lambda: ran() >= 10, 120, "the loop going on")
    rig.kill_server()
    rig.cluster.start_server()

    view = wait_ended(rig, execution_id)
    assert view["status"] == "COMPLETED", view
    assert view["result"] == [f"start.{i}" for i in range(ITEMS)]  # in item order
    verdicts = judge_steps(rig, execution_id, token)
    assert len(verdicts) == ITEMS
    again = [v for v in verdicts.values() if v.runs == 2]
    assert again and all(v.lost_leases == 1 for v in again)  # the killed worker's iterations
    events = pg_fetch(
        rig.cluster.env, "SELECT type FROM noetl.events WHERE execution_id = $1", uuid.UUID(execution_id)
    )
    assert sum(1 for e in events if e["type"] == "loop.done") == 1
