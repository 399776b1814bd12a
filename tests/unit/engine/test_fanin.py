"""Fan-out and fan-in: an inclusive arc set starts every matching branch; a step with arcs from
several steps waits (pending) while a step that can still lead to it runs, then runs once."""

from __future__ import annotations

from noetl.engine.state import StepRun
from tests.unit.engine.sim import Sim, playbook

FANOUT = """\
workflow:
  - step: start
    next:
      spec: {mode: inclusive}
      arcs: [{step: a1}, {step: b1}, {step: c1, when: "{{ go_c | default(false) }}"}]
  - step: a1
    tool: {kind: python, code: "result = 1"}
    next: a2
  - step: a2
    tool: {kind: python, code: "result = 2"}
    next: reduce
  - step: b1
    tool: {kind: python, code: "result = 3"}
    next: reduce
  - step: c1
    tool: {kind: python, code: "result = 4"}
    next: reduce
  - step: reduce
    tool: {kind: python, code: "result = a + b", input: {a: "{{ a2 }}", b: "{{ b1 }}"}}
"""


def count(sim: Sim, kind: str, step: str) -> int:
    return sim.trail().count((kind, step))


def test_inclusive_arcs_start_every_matching_branch_at_once() -> None:
    sim = Sim(playbook(FANOUT))
    d = sim.start()
    assert sorted(x.step for x in d.dispatch) == ["a1", "b1"]
    assert "c1" not in (sim.state.steps if sim.state else {})


def test_the_fan_in_waits_for_the_longer_branch_and_runs_once_with_every_result() -> None:
    sim = Sim(playbook(FANOUT))
    sim.start()
    d = sim.finish("b1", 3)
    # b1 arrives first: a1 still runs and leads to reduce, so reduce waits.
    assert d.steps["reduce"] == StepRun("reduce", "pending")
    assert d.dispatch == [] and count(sim, "step.enter", "reduce") == 0
    d = sim.finish("a1", 1)
    assert [x.step for x in d.dispatch] == ["a2"]
    assert count(sim, "step.enter", "reduce") == 0
    d = sim.finish("a2", 2)
    assert [(x.step, x.tool["input"]) for x in d.dispatch] == [("reduce", {"a": 2, "b": 3})]
    assert count(sim, "step.enter", "reduce") == 1
    d = sim.finish("reduce", 5)
    assert d.final == "COMPLETED"
    assert count(sim, "step.enter", "reduce") == 1


def test_the_fan_in_runs_once_when_the_other_branch_arrives_last() -> None:
    sim = Sim(playbook(FANOUT))
    sim.start()
    sim.finish("a1", 1)
    sim.finish("a2", 2)
    assert sim.state is not None and sim.state.steps["reduce"].status == "pending"
    d = sim.finish("b1", 3)
    assert [x.step for x in d.dispatch] == ["reduce"]
    sim.finish("reduce", 5)
    assert count(sim, "step.enter", "reduce") == 1 and sim.status == "COMPLETED"


def test_a_branch_not_taken_does_not_hold_the_fan_in() -> None:
    # c1's arc is false: it never starts, and reduce does not wait for it.
    sim = Sim(playbook(FANOUT))
    sim.start()
    sim.finish("b1", 3)
    sim.finish("a1", 1)
    d = sim.finish("a2", 2)
    assert [x.step for x in d.dispatch] == ["reduce"]


def test_a_branch_that_ends_elsewhere_releases_the_waiting_fan_in() -> None:
    sim = Sim(
        playbook(
            """\
            workflow:
              - step: start
                next: {spec: {mode: inclusive}, arcs: [a, b]}
              - step: a
                tool: {kind: python, code: "result = 1"}
                next: join
              - step: b
                tool: {kind: python, code: "result = 2"}
                next: [{step: join, when: "{{ b == 99 }}"}]
              - step: join
                tool: {kind: python, code: "result = 3"}
            """
        )
    )
    sim.start()
    d = sim.finish("a", 1)
    assert d.steps["join"].status == "pending"
    d = sim.finish("b", 2)  # its arc is false: nothing can reach join any more
    assert [x.step for x in d.dispatch] == ["join"]
    sim.finish("join", 3)
    assert sim.status == "COMPLETED" and count(sim, "step.enter", "join") == 1


def test_an_exclusive_merge_does_not_wait() -> None:
    sim = Sim(
        playbook(
            """\
            workload: {left: true}
            workflow:
              - step: start
                next: [{step: l, when: "{{ left }}"}, {step: r}]
              - step: l
                tool: {kind: python, code: "result = 1"}
                next: merge
              - step: r
                tool: {kind: python, code: "result = 2"}
                next: merge
              - step: merge
                tool: {kind: python, code: "result = 3"}
            """
        )
    )
    sim.start()
    d = sim.finish("l", 1)
    assert [x.step for x in d.dispatch] == ["merge"]


def test_a_failed_upstream_with_no_handler_fails_the_run_and_drops_the_waiting_fan_in() -> None:
    sim = Sim(playbook(FANOUT))
    sim.start()
    sim.finish("b1", 3)
    d = sim.finish("a1", error="down")
    assert d.final == "FAILED"
    assert d.steps["reduce"].status == "cancelled"
    assert count(sim, "step.enter", "reduce") == 0
