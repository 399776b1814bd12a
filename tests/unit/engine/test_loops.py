"""Loops, rule by rule: each test plays the workers and asserts the decisions (commands with their
iteration, counters, events, the result in item order), not only how the run ends."""

from __future__ import annotations

from noetl.engine import decide
from noetl.engine.state import ExecutionState, IterationEnd, LoopRun, LoopStart, StepRun
from tests.unit.engine.sim import Sim, playbook

SEQUENTIAL = """\
workload: {cities: [Paris, Oslo, Rome]}
workflow:
  - step: start
    loop: {in: "{{ cities }}", iterator: city}
    tool: {kind: python, code: "result = name + '!'"}
    input: {name: "{{ city }}", same: "{{ iter.city }}", i: "{{ loop_index }}", j: "{{ iter._index }}"}
    next: after
  - step: after
    tool: {kind: shell, command: "echo {{ start | length }} {{ start | join(',') }}"}
"""


def parallel(limit: str = "max_in_flight: 2", n: int = 5) -> str:
    return f"""\
workload: {{xs: {list(range(n))}}}
workflow:
  - step: start
    loop: {{in: "{{{{ xs }}}}", iterator: x, spec: {{mode: parallel, {limit}}}}}
    tool: {{kind: python, code: "result = x * 10"}}
    input: {{x: "{{{{ x }}}}"}}
"""


def test_a_sequential_loop_dispatches_one_iteration_at_a_time_with_the_item_names() -> None:
    sim = Sim(playbook(SEQUENTIAL))
    d = sim.start()
    assert d.loops == [LoopStart("start", ["Paris", "Oslo", "Rome"])]
    assert [(x.step, x.iteration) for x in d.dispatch] == [("start", 0)]
    assert d.dispatch[0].tool["input"] == {"name": "Paris", "same": "Paris", "i": 0, "j": 0}
    assert d.steps["start"].loop == LoopRun(total=3, max_in_flight=1, dispatched=1)
    assert [e.type for e in d.events] == ["playbook.initialized", "step.enter"]

    d = sim.finish_iteration("start", 0, "Paris!")
    assert [(x.step, x.iteration, x.tool["input"]["name"]) for x in d.dispatch] == [("start", 1, "Oslo")]
    assert d.dispatch[0].tool["input"]["i"] == 1
    assert [(e.type, e.iteration, e.result) for e in d.events] == [("call.done", 0, "Paris!")]
    assert d.iterations == [IterationEnd("start", 0, True, "Paris!")]
    assert d.steps["start"].loop == LoopRun(total=3, max_in_flight=1, dispatched=2, done=1)
    assert d.collect is None

    sim.finish_iteration("start", 1, "Oslo!")
    assert sim.in_flight("start") == [2]
    d = sim.finish_iteration("start", 2, "Rome!")
    # The last one: the server collects the results in item order and applies loop_done.
    assert sim.decisions[-2].collect == "start"
    assert [(e.type, e.node_name) for e in sim.decisions[-1].events] == [
        ("loop.done", "start"),
        ("step.exit", "start"),
        ("step.enter", "after"),
    ]
    assert sim.decisions[-1].events[0].result == {"count": 3}
    assert sim.state is not None and sim.state.steps["start"].result == ["Paris!", "Oslo!", "Rome!"]
    assert sim.tool("after") == {"kind": "shell", "command": "echo 3 Paris!,Oslo!,Rome!"}
    assert sim.trail().count(("step.enter", "start")) == 1
    assert sim.trail().count(("call.done", "start")) == 3


def test_a_parallel_loop_keeps_max_in_flight_running_and_collects_results_in_item_order() -> None:
    sim = Sim(playbook(parallel()))
    d = sim.start()
    assert [x.iteration for x in d.dispatch] == [0, 1]
    # Iteration 1 ends first: one slot frees, one iteration (2) starts.
    d = sim.finish_iteration("start", 1, 10)
    assert [x.iteration for x in d.dispatch] == [2]
    assert sim.in_flight("start") == [0, 2]
    sim.finish_iteration("start", 2, 20)
    assert sim.in_flight("start") == [0, 3]
    sim.finish_iteration("start", 0, 0)
    assert sim.in_flight("start") == [3, 4]
    sim.finish_iteration("start", 4, 40)
    assert sim.in_flight("start") == [3]
    assert sim.status == "RUNNING"
    sim.finish_iteration("start", 3, 30)
    assert sim.status == "COMPLETED"
    assert sim.state is not None and sim.state.steps["start"].result == [0, 10, 20, 30, 40]
    assert sim.events[-1].result == [0, 10, 20, 30, 40]
    assert sim.trail().count(("call.done", "start")) == 5
    assert sim.trail().count(("loop.done", "start")) == 1


def test_parallel_without_max_in_flight_dispatches_every_iteration_at_once() -> None:
    sim = Sim(playbook(parallel(limit="", n=4).replace(", }", "}")))
    d = sim.start()
    assert [x.iteration for x in d.dispatch] == [0, 1, 2, 3]
    assert d.steps["start"].loop == LoopRun(total=4, max_in_flight=None, dispatched=4)


def test_an_empty_list_finishes_the_step_at_once_with_an_empty_list() -> None:
    sim = Sim(playbook(SEQUENTIAL))
    d = sim.start({"cities": []})
    assert [(e.type, e.node_name) for e in d.events][1:4] == [
        ("step.enter", "start"),
        ("loop.done", "start"),
        ("step.exit", "start"),
    ]
    assert sim.state is not None and sim.state.steps["start"].result == []
    assert [(x.step, x.tool) for x in d.dispatch] == [("after", {"kind": "shell", "command": "echo 0 "})]


def test_a_failed_iteration_fails_the_step_and_stops_the_other_iterations() -> None:
    sim = Sim(playbook(parallel(limit="max_in_flight: 3")))
    sim.start()
    d = sim.finish_iteration("start", 1, error="boom")
    assert [(e.type, e.iteration, e.error) for e in d.events][:1] == [("call.error", 1, "boom")]
    assert d.cancel == ["start"]
    assert d.final == "FAILED"
    assert d.error == "step 'start' failed: iteration 1: boom"
    assert d.dispatch == []
    assert sim.iterations == {}
    # A late report of a cancelled iteration decides nothing.
    assert sim.state is not None
    late = decide.iteration_finished(sim.pb, sim.state, "start", 0, True, 0, None)
    assert late.events == [] and late.final is None


def test_an_iteration_reported_twice_or_never_dispatched_decides_nothing() -> None:
    sim = Sim(playbook(parallel()))
    sim.start()
    sim.finish_iteration("start", 0, 0)
    assert sim.state is not None
    never = decide.iteration_finished(sim.pb, sim.state, "start", 4, True, 40, None)
    assert never.events == [] and never.dispatch == []


def test_an_iteration_end_needs_only_the_counters_and_the_next_item() -> None:
    # The state holds no item list and no results: what the server loads per iteration is O(1).
    pb = playbook(parallel(limit="max_in_flight: 2", n=10_000))
    run = StepRun("start", "running", attempts=1)
    run.loop = LoopRun(total=10_000, max_in_flight=2, dispatched=5000, done=4998, next_items={5000: 5000})
    state = ExecutionState("e", workload={}, steps={"start": run})
    d = decide.iteration_finished(pb, state, "start", 4999, True, 49990, None)
    assert [(x.iteration, x.tool["input"]) for x in d.dispatch] == [(5000, {"x": 5000})]
    assert d.steps["start"].loop == LoopRun(total=10_000, max_in_flight=2, dispatched=5001, done=4999)
    assert d.collect is None
    # Without the next item loaded, nothing is dispatched (and nothing is guessed).
    run.loop = LoopRun(total=10_000, max_in_flight=2, dispatched=5000, done=4998)
    assert decide.iteration_finished(pb, state, "start", 4999, True, 1, None).dispatch == []


def test_a_noop_loop_runs_every_iteration_in_one_decision() -> None:
    sim = Sim(
        playbook(
            """\
            workflow:
              - step: start
                loop: {in: [a, b, c], iterator: letter}
                tool: {kind: noop}
                input: {upper: "{{ letter | upper }}", at: "{{ loop_index }}"}
            """
        )
    )
    d = sim.start()
    assert d.dispatch == []
    assert [(e.type, e.iteration) for e in d.events if e.type == "call.done"] == [
        ("call.done", 0),
        ("call.done", 1),
        ("call.done", 2),
    ]
    assert d.final == "COMPLETED"
    assert sim.state is not None
    assert sim.state.steps["start"].result == [
        {"upper": "A", "at": 0},
        {"upper": "B", "at": 1},
        {"upper": "C", "at": 2},
    ]


def test_a_loop_over_something_that_is_not_a_list_fails_the_step_naming_loop_in() -> None:
    sim = Sim(playbook(SEQUENTIAL))
    d = sim.start({"cities": "Paris"})
    assert d.final == "FAILED"
    assert d.error == "step 'start' failed: loop.in: expected a list, got str: 'Paris'"


def test_an_iteration_that_cannot_render_fails_the_step_naming_the_iteration() -> None:
    sim = Sim(
        playbook(
            """\
            workload: {xs: [{a: 1}, {b: 2}]}
            workflow:
              - step: start
                loop: {in: "{{ xs }}", iterator: x}
                tool: {kind: python, code: "result = v"}
                input: {v: "{{ x.a }}"}
            """
        )
    )
    sim.start()
    d = sim.finish_iteration("start", 0, 1)
    assert d.final == "FAILED"
    assert d.error is not None and d.error.startswith("step 'start' failed: iteration 1: input.v:")


def test_a_task_list_loop_gives_the_worker_the_iteration_names_in_its_scope() -> None:
    sim = Sim(
        playbook(
            """\
            workflow:
              - step: start
                loop: {in: [7, 8], iterator: n}
                tool:
                  - {name: a, kind: python, code: "result = n", input: {n: "{{ n }}"}}
            """
        )
    )
    d = sim.start()
    assert d.dispatch[0].tool["scope"]["loop"] == {"n": 7, "iter": {"n": 7, "_index": 0}, "loop_index": 0}


def test_policy_writes_of_an_iteration_go_into_the_context() -> None:
    sim = Sim(playbook(parallel()))
    sim.start()
    d = sim.finish_iteration("start", 0, 0, writes={"ctx.seen": 1})
    assert d.ctx == {"seen": 1}


def test_max_in_flight_may_come_from_the_workload() -> None:
    sim = Sim(playbook(parallel(limit="max_in_flight: '{{ width }}'")))
    d = sim.start({"width": 3})
    assert [x.iteration for x in d.dispatch] == [0, 1, 2]
    d = Sim(playbook(parallel(limit="max_in_flight: '{{ width }}'"))).start({"width": 0})
    assert d.final == "FAILED"
    assert (
        d.error == "step 'start' failed: loop.spec.max_in_flight: expected a whole number of 1 or more, got 0"
    )
