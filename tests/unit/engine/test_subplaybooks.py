"""Sub-playbooks: a ``kind: playbook`` step decides a child execution (no command); the child's
end, reported like a command's end, finishes the step with the child's result or fails it."""

from __future__ import annotations

from noetl.engine.state import ChildStart
from tests.unit.engine.sim import Sim, playbook

PARENT = """\
workload: {n: 3}
workflow:
  - step: start
    next: {spec: {mode: inclusive}, arcs: [one, two]}
  - step: one
    tool: {kind: playbook, path: kids/double, input: {x: "{{ n }}", keep: 1}}
    input: {keep: 2}
    next: total
  - step: two
    tool: {kind: playbook, path: "kids/{{ 'square' }}", version: 2, input: {x: "{{ n }}"}}
    next: total
  - step: total
    tool: {kind: python, code: "result = a + b", input: {a: "{{ one.value }}", b: "{{ two.value }}"}}
"""


def test_playbook_steps_start_children_with_their_rendered_payload() -> None:
    sim = Sim(playbook(PARENT))
    d = sim.start()
    assert d.dispatch == []
    assert d.children == [
        ChildStart(step="one", path="kids/double", version=None, payload={"x": 3, "keep": 2}),
        ChildStart(step="two", path="kids/square", version=2, payload={"x": 3}),
    ]
    assert [(e.type, e.node_name) for e in d.events].count(("step.enter", "one")) == 1


def test_the_children_results_finish_their_steps_and_the_parent_goes_on() -> None:
    sim = Sim(playbook(PARENT))
    sim.start()
    sim.finish("one", {"value": 6})
    d = sim.finish("two", {"value": 9})
    assert [(x.step, x.tool["input"]) for x in d.dispatch] == [("total", {"a": 6, "b": 9})]
    assert sim.trail().count(("call.done", "one")) == 1


def test_a_failed_child_fails_its_step_and_the_run_naming_the_step() -> None:
    sim = Sim(playbook(PARENT))
    sim.start()
    d = sim.finish("one", error="child execution 123 FAILED: step 'start' failed: boom")
    assert d.final == "FAILED"
    assert d.error == "step 'one' failed: child execution 123 FAILED: step 'start' failed: boom"
    # The other child is stopped: the server cancels the children of the steps in `cancel`.
    assert d.cancel == ["two"]


def test_a_loop_of_children_starts_one_child_per_item_with_its_iteration() -> None:
    sim = Sim(
        playbook(
            """\
            workflow:
              - step: start
                loop: {in: [a, b], iterator: who, spec: {mode: parallel}}
                tool: {kind: playbook, path: kids/greet, input: {who: "{{ who }}"}}
            """
        )
    )
    d = sim.start()
    assert d.children == [
        ChildStart(step="start", path="kids/greet", version=None, payload={"who": "a"}, iteration=0),
        ChildStart(step="start", path="kids/greet", version=None, payload={"who": "b"}, iteration=1),
    ]
    sim.finish_iteration("start", 1, "hi b")
    sim.finish_iteration("start", 0, "hi a")
    assert sim.status == "COMPLETED"
    assert sim.state is not None and sim.state.steps["start"].result == ["hi a", "hi b"]


def test_a_version_that_renders_to_nonsense_fails_the_step() -> None:
    sim = Sim(
        playbook(
            """\
            workload: {v: "-1"}
            workflow:
              - step: start
                tool: {kind: playbook, path: kids/x, version: "{{ v }}"}
            """
        )
    )
    d = sim.start()
    assert d.final == "FAILED"
    assert d.error == "step 'start' failed: tool.version: expected a version number or 'latest', got '-1'"
