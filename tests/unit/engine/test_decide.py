"""The engine's decisions, rule by rule: each test plays the workers and asserts the decisions
(commands, context writes, step runs, events, the final status), not only how the run ends."""

from __future__ import annotations

import pytest

from noetl.engine import decide
from noetl.engine.state import Decisions, Event, StepRun
from tests.unit.engine.sim import Sim, playbook

LINEAR = """\
workload: {n: 2, who: world}
workflow:
  - step: start
    tool: {kind: python, code: "result = n + 1", input: {n: "{{ n }}"}}
    next: double
  - step: double
    tool: {kind: python, code: "result = x * 2", input: {x: "{{ start }}"}}
    next: [{step: done}]
  - step: done
    tool: {kind: shell, command: "echo {{ double }} {{ who }}"}
"""


def test_start_merges_the_payload_over_the_workload_and_dispatches_start() -> None:
    sim = Sim(playbook(LINEAR))
    decisions = sim.start({"n": 10, "extra": True})
    assert sim.state is not None and sim.state.workload == {"n": 10, "who": "world", "extra": True}
    assert decisions.events == [
        Event(
            "playbook.initialized",
            None,
            "RUNNING",
            result={"workload": {"n": 10, "who": "world", "extra": True}},
        ),
        Event("step.enter", "start", "RUNNING"),
    ]
    assert [(d.step, d.tool) for d in decisions.dispatch] == [
        ("start", {"kind": "python", "code": "result = n + 1", "input": {"n": 10}})
    ]
    assert decisions.steps == {"start": StepRun("start", "running", attempts=1)}
    assert decisions.final is None


def test_a_linear_playbook_passes_results_along_and_completes_with_the_last_result() -> None:
    sim = Sim(playbook(LINEAR))
    sim.start()
    d = sim.finish("start", 3)
    assert [e.type for e in d.events] == ["call.done", "step.exit", "step.enter"]
    assert d.events[0] == Event("call.done", "start", "COMPLETED", result=3)
    assert sim.tool("double") == {"kind": "python", "code": "result = x * 2", "input": {"x": 3}}
    sim.finish("double", 6)
    assert sim.tool("done") == {"kind": "shell", "command": "echo 6 world"}
    d = sim.finish("done", {"exit_code": 0, "stdout": "6 world\n"})
    assert d.final == "COMPLETED" and d.error is None
    assert d.events[-2:] == [
        Event("workflow.completed", None, "COMPLETED"),
        Event("playbook.completed", None, "COMPLETED", result={"exit_code": 0, "stdout": "6 world\n"}),
    ]
    assert sim.entered() == ["start", "double", "done"]
    assert sim.status == "COMPLETED"
    assert sim.state is not None
    assert {n: (r.status, r.result) for n, r in sim.state.steps.items()} == {
        "start": ("done", 3),
        "double": ("done", 6),
        "done": ("done", {"exit_code": 0, "stdout": "6 world\n"}),
    }


BRANCH = """\
workload: {value: 5}
workflow:
  - step: start
    tool: {kind: python, code: "result = value"}
    next:
      spec: {mode: MODE}
      arcs:
        - {step: high, when: "{{ start > 3 }}"}
        - {step: positive, when: "{{ start > 0 }}"}
        - {step: low, when: "{{ start <= 3 }}"}
  - step: high
    tool: {kind: shell, command: "echo high"}
  - step: positive
    tool: {kind: shell, command: "echo positive"}
  - step: low
    tool: {kind: shell, command: "echo low"}
"""


def test_exclusive_takes_the_first_true_arc_only() -> None:
    sim = Sim(playbook(BRANCH.replace("MODE", "exclusive")))
    sim.start()
    d = sim.finish("start", 5)
    assert [x.step for x in d.dispatch] == ["high"]
    sim.finish("high", "ok")
    assert sim.status == "COMPLETED" and sim.entered() == ["start", "high"]


def test_inclusive_takes_every_true_arc_in_parallel() -> None:
    sim = Sim(playbook(BRANCH.replace("MODE", "inclusive")))
    sim.start()
    d = sim.finish("start", 5)
    assert [x.step for x in d.dispatch] == ["high", "positive"]
    assert sim.finish("high", "h").final is None  # `positive` still runs
    assert sim.finish("positive", "p").final == "COMPLETED"
    assert sim.entered() == ["start", "high", "positive"]


def test_the_branch_taken_depends_on_the_value() -> None:
    sim = Sim(playbook(BRANCH.replace("MODE", "exclusive")))
    sim.start()
    assert [x.step for x in sim.finish("start", 1).dispatch] == ["positive"]
    sim = Sim(playbook(BRANCH.replace("MODE", "exclusive")))
    sim.start()
    assert [x.step for x in sim.finish("start", -1).dispatch] == ["low"]


def test_no_true_arc_ends_the_branch_and_the_run_completes() -> None:
    sim = Sim(playbook(BRANCH.replace("MODE", "inclusive").replace("start <= 3", "start < -10")))
    sim.start()
    d = sim.finish("start", -1)
    assert d.dispatch == [] and d.final == "COMPLETED"
    assert sim.entered() == ["start"]


@pytest.mark.parametrize(
    "next_yaml", ["next: [a, b]", "next: [{step: a}, {step: b}]", "next: {arcs: [a, b]}"]
)
def test_older_forms_of_next_are_exclusive(next_yaml: str) -> None:
    sim = Sim(playbook(f"workflow:\n  - step: start\n    {next_yaml}\n  - step: a\n  - step: b\n"))
    sim.start()
    assert sim.entered() == ["start", "a"] and sim.status == "COMPLETED"


def test_an_arc_without_when_is_always_taken_on_success() -> None:
    sim = Sim(
        playbook(
            "workflow:\n  - step: start\n    next: {spec: {mode: inclusive}, arcs: [a, b]}\n"
            "  - step: a\n  - step: b\n"
        )
    )
    sim.start()
    assert sim.entered() == ["start", "a", "b"]


SET = """\
workload: {base: 10}
workflow:
  - step: start
    tool: {kind: python, code: "result = {'v': 3}"}
    set:
      ctx.total: "{{ base + start.v }}"
      iter.seen: "{{ start.v }}"
      step.flag: true
      plain: "{{ start.data.v }}"
    next:
      - step: big
        when: "{{ ctx.total > 12 }}"
        set: {ctx.route: big, ctx.from: "{{ output.data.v }}"}
      - step: small
        set: {ctx.route: small}
  - step: big
    tool: {kind: shell, command: "echo {{ route }} {{ total }} {{ ctx.from }}"}
  - step: small
"""


def test_set_writes_the_context_before_the_arcs_and_only_taken_arcs_set() -> None:
    sim = Sim(playbook(SET))
    sim.start()
    d = sim.finish("start", {"v": 3})
    assert d.ctx == {"total": 13, "seen": 3, "flag": True, "plain": 3, "route": "big", "from": 3}
    assert sim.tool("big") == {"kind": "shell", "command": "echo big 13 3"}
    assert sim.state is not None and sim.state.ctx["route"] == "big"


def test_set_on_the_other_branch() -> None:
    sim = Sim(playbook(SET.replace("base: 10", "base: 1")))
    sim.start()
    d = sim.finish("start", {"v": 3})
    assert d.ctx == {"total": 4, "seen": 3, "flag": True, "plain": 3, "route": "small"}
    assert d.final == "COMPLETED"


def test_context_writes_are_seen_by_later_steps_as_ctx_workload_and_top_level() -> None:
    sim = Sim(
        playbook(
            """\
workload: {x: old}
workflow:
  - step: start
    set: {ctx.x: new}
    next: show
  - step: show
    tool: {kind: shell, command: "{{ x }} {{ ctx.x }} {{ workload.x }}"}
"""
        )
    )
    sim.start()
    assert sim.tool("show")["command"] == "new new new"


END = """\
workflow:
  - step: start
    next: {spec: {mode: inclusive}, arcs: [short, long]}
  - step: short
    tool: {kind: shell, command: "true"}
  - step: long
    tool: {kind: shell, command: "sleep 1"}
    next: long2
  - step: long2
    tool: {kind: shell, command: "true"}
  - step: end
    tool: {kind: shell, command: "echo {{ short.stdout }}{{ long2.stdout }}"}
"""


def test_a_step_without_next_continues_at_end_which_runs_once_after_every_branch() -> None:
    sim = Sim(playbook(END))
    sim.start()
    d = sim.finish("short", {"stdout": "s"})
    assert d.dispatch == [] and d.steps["end"] == StepRun("end", "pending")
    assert "end" not in sim.entered()
    sim.finish("long", {"stdout": "l"})
    d = sim.finish("long2", {"stdout": "2"})
    assert [x.step for x in d.dispatch] == ["end"]
    assert sim.tool("end")["command"] == "echo s2"
    assert sim.finish("end", "bye").final == "COMPLETED"
    assert sim.entered().count("end") == 1
    assert sim.entered() == ["start", "short", "long", "long2", "end"]


def test_end_does_not_continue_to_itself_and_without_end_a_branch_just_ends() -> None:
    sim = Sim(playbook("workflow:\n  - step: start\n  - step: end\n"))
    sim.start()
    assert sim.entered() == ["start", "end"] and sim.status == "COMPLETED"
    sim = Sim(playbook("workflow:\n  - step: start\n  - step: other\n"))
    sim.start()
    assert sim.entered() == ["start"] and sim.status == "COMPLETED"


FAIL = """\
workflow:
  - step: start
    next: {spec: {mode: inclusive}, arcs: [a, b]}
  - step: a
    tool: {kind: shell, command: "exit 3"}
  - step: b
    tool: {kind: shell, command: "sleep 10"}
  - step: end
"""


def test_an_unhandled_failure_fails_the_run_naming_the_step_and_cancels_the_other_branches() -> None:
    sim = Sim(playbook(FAIL))
    sim.start()
    d = sim.finish("a", None, "exited with code 3")
    assert d.final == "FAILED"
    assert d.error == "step 'a' failed: exited with code 3"
    assert d.cancel == ["b"]
    assert d.steps["a"] == StepRun("a", "failed", error="exited with code 3", attempts=1)
    assert d.steps["b"] == StepRun("b", "cancelled", error="cancelled: step 'a' failed", attempts=1)
    assert [(e.type, e.node_name, e.status) for e in d.events] == [
        ("call.error", "a", "FAILED"),
        ("step.exit", "a", "FAILED"),
        ("workflow.failed", None, "FAILED"),
        ("playbook.failed", None, "FAILED"),
    ]
    assert d.events[-1].error == "step 'a' failed: exited with code 3"
    assert d.dispatch == [] and "end" not in d.steps
    # The cancelled branch's late report changes nothing.
    assert sim.finish("b", "late") == Decisions()
    assert sim.status == "FAILED"


HANDLED = """\
workflow:
  - step: start
    tool: {kind: http, url: "http://x"}
    next:
      - step: ok
        when: "{{ event.name == 'call.done' }}"
      - step: recover
        when: "{{ output.status == 'error' }}"
        set: {ctx.why: "{{ error }}"}
      - step: ok
  - step: ok
  - step: recover
    tool: {kind: shell, command: "echo {{ why }} {{ 'ran' if start else 'did not run' }}"}
"""


def test_a_failure_with_an_arc_that_handles_it_continues() -> None:
    sim = Sim(playbook(HANDLED))
    sim.start()
    d = sim.finish("start", None, "connection refused")
    assert d.final is None and d.ctx == {"why": "connection refused"}
    assert d.steps["start"].status == "failed"
    assert sim.tool("recover")["command"] == "echo connection refused did not run"
    assert sim.finish("recover", "fine").final == "COMPLETED"
    assert sim.entered() == ["start", "recover"]


def test_an_arc_without_when_does_not_handle_a_failure() -> None:
    sim = Sim(
        playbook(
            "workflow:\n  - step: start\n    tool: {kind: shell, command: x}\n    next: other\n"
            "  - step: other\n"
        )
    )
    sim.start()
    d = sim.finish("start", None, "boom")
    assert d.final == "FAILED" and d.error == "step 'start' failed: boom"
    assert sim.entered() == ["start"]


def test_a_when_that_cannot_be_evaluated_fails_the_step_naming_the_arc() -> None:
    sim = Sim(
        playbook(
            """\
workflow:
  - step: start
    tool: {kind: python, code: "result = 1"}
    next:
      - {step: a, when: "{{ start == 2 }}"}
      - {step: a, when: "{{ statuss == 'ok' }}"}
  - step: a
"""
        )
    )
    sim.start()
    d = sim.finish("start", 1)
    assert d.final == "FAILED"
    assert d.error == "step 'start' failed: next[1].when: 'statuss' is undefined"
    assert d.steps["start"].status == "failed"
    assert [(e.type, e.status) for e in d.events[:2]] == [("call.done", "COMPLETED"), ("step.exit", "FAILED")]


def test_a_set_that_cannot_be_rendered_fails_the_step_and_writes_nothing() -> None:
    sim = Sim(
        playbook(
            "workflow:\n  - step: start\n    tool: {kind: noop}\n    set: {ctx.a: 1, ctx.b: '{{ nope }}'}\n"
            "    next: {arcs: [{step: x, set: {ctx.c: 2}}]}\n  - step: x\n"
        )
    )
    d = sim.start()
    assert d.final == "FAILED" and d.error == "step 'start' failed: set.ctx.b: 'nope' is undefined"
    assert d.ctx == {}


def test_a_template_error_in_the_tool_fails_the_step_before_any_command() -> None:
    sim = Sim(
        playbook("workflow:\n  - step: start\n    tool: {kind: shell, command: 'echo {{ missing.x }}'}\n")
    )
    d = sim.start()
    assert d.dispatch == []
    assert d.error == "step 'start' failed: tool.command: 'missing' is undefined"
    assert [(e.type, e.node_name) for e in d.events][1:3] == [("step.enter", "start"), ("step.exit", "start")]


def test_input_is_merged_tool_args_then_tool_input_then_step_input_and_the_tool_sees_it() -> None:
    sim = Sim(
        playbook(
            """\
workload: {w: 1}
workflow:
  - step: start
    tool:
      kind: python
      code: "result = a"
      args: {a: args, b: args, c: args}
      input: {b: tool, c: tool}
    input: {c: "{{ w }}"}
    next: call
  - step: call
    tool: {kind: http, url: "http://h/{{ input.id }}", input: {id: 7}}
    input: {q: x}
"""
        )
    )
    sim.start()
    assert sim.tool("start") == {
        "kind": "python",
        "code": "result = a",
        "input": {"a": "args", "b": "tool", "c": 1},
    }
    sim.finish("start", "args")
    # an http tool sees the merged input in its templates; only python and noop are given it
    assert sim.tool("call") == {"kind": "http", "url": "http://h/7"}


def test_python_code_that_names_context_gets_it_read_only_as_plain_json() -> None:
    sim = Sim(
        playbook(
            "workload: {n: 1}\nworkflow:\n  - step: start\n    tool: {kind: noop}\n    next: p\n"
            "  - step: p\n    tool: {kind: python, code: \"result = context['start']\"}\n"
            "  - step: q\n    tool: {kind: python, code: 'result = 1'}\n"
        )
    )
    sim.start()
    assert sim.tool("p")["context"] == {
        "n": 1,
        "start": {},
        "workload": {"n": 1},
        "ctx": {"n": 1},
        "execution_id": "exec-1",
        "job": {"uuid": "exec-1", "execution_id": "exec-1", "id": "exec-1"},
    }


def test_noop_and_a_step_without_tool_finish_at_once_with_their_input() -> None:
    sim = Sim(
        playbook(
            """\
workload: {n: 4}
workflow:
  - step: start
    tool: {kind: noop, input: {a: "{{ n }}"}}
    input: {b: 2}
    next: bare
  - step: bare
    input: {c: "{{ start.a + start.b }}"}
    next: last
  - step: last
    tool: {kind: shell, command: "echo {{ bare.c }}"}
"""
        )
    )
    d = sim.start()
    assert d.steps["start"] == StepRun("start", "done", result={"a": 4, "b": 2}, attempts=1)
    assert d.steps["bare"] == StepRun("bare", "done", result={"c": 6}, attempts=1)
    assert sim.tool("last")["command"] == "echo 6"
    # a noop is a call (call.done); a step without a tool has none
    assert [(e.type, e.node_name) for e in d.events] == [
        ("playbook.initialized", None),
        ("step.enter", "start"),
        ("call.done", "start"),
        ("step.exit", "start"),
        ("step.enter", "bare"),
        ("step.exit", "bare"),
        ("step.enter", "last"),
    ]


WORKBOOK = """\
workload: {who: ada}
workbook:
  - name: greet
    tool: {kind: python, code: "result = {'greeting': 'hi ' + who}", input: {who: nobody, tone: calm}}
    assert: {expects: [who], returns: [greeting]}
  - name: echo
    tool: {kind: noop, input: {fixed: 1}}
workflow:
  - step: start
    tool: {kind: workbook, name: greet, input: {tone: "{{ who }}"}}
    input: {who: "{{ who }}"}
    next: second
  - step: second
    tool: {kind: workbook, name: echo, input: {more: 2}}
"""


def test_a_workbook_call_runs_the_entry_tool_with_the_call_input_over_the_entry_input() -> None:
    sim = Sim(playbook(WORKBOOK))
    sim.start()
    assert sim.tool("start") == {
        "kind": "python",
        "code": "result = {'greeting': 'hi ' + who}",
        "input": {"who": "ada", "tone": "ada"},
    }
    d = sim.finish("start", {"greeting": "hi ada"})
    assert d.steps["second"] == StepRun("second", "done", result={"fixed": 1, "more": 2}, attempts=1)
    assert d.final == "COMPLETED"


def test_workbook_assert_returns_fails_the_step_naming_the_key() -> None:
    sim = Sim(playbook(WORKBOOK))
    sim.start()
    d = sim.finish("start", {"other": 1})
    assert (
        d.error == "step 'start' failed: workbook 'greet': assert.returns: the result has no key 'greeting'"
    )
    assert d.events[0] == Event(
        "call.error", "start", "FAILED", error=d.error.removeprefix("step 'start' failed: ")
    )


def test_workbook_assert_expects_fails_before_the_command() -> None:
    sim = Sim(playbook(WORKBOOK.replace("expects: [who]", "expects: [who, lang]")))
    d = sim.start()
    assert d.dispatch == []
    assert d.error == "step 'start' failed: workbook 'greet': assert.expects: no input key 'lang'"


def test_a_task_list_is_one_command_of_kind_tasks_with_the_scope_for_the_worker() -> None:
    sim = Sim(
        playbook(
            """\
workload: {n: 1}
workbook:
  - name: greet
    tool: {kind: noop, input: {x: 1}}
    assert: {returns: [x]}
workflow:
  - step: start
    tool: {kind: noop}
    next: pipe
  - step: pipe
    input: {m: "{{ n }}"}
    tool:
      - {name: fetch, kind: http, url: "http://h/{{ m }}"}
      - use: {kind: python, code: "result = fetch['status_code']"}
      - {kind: workbook, name: greet}
"""
        )
    )
    sim.start()
    assert sim.tool("pipe") == {
        "kind": "tasks",
        "tasks": [
            {"name": "fetch", "kind": "http", "url": "http://h/{{ m }}"},
            {"name": "use", "kind": "python", "code": "result = fetch['status_code']"},
            {"name": "greet", "kind": "noop", "input": {"x": 1}, "assert": {"expects": [], "returns": ["x"]}},
        ],
        "input": {"m": 1},
        "scope": {
            "execution_id": "exec-1",
            "workload": {"n": 1},
            "ctx": {},
            "results": {"start": {}},
            "not_run": ["pipe"],
        },
    }
    assert sim.finish("pipe", 200).final == "COMPLETED"


def test_a_report_for_a_step_that_is_not_running_decides_nothing() -> None:
    sim = Sim(playbook(LINEAR))
    sim.start()
    assert sim.finish("double", 1) == Decisions()  # never entered
    sim.finish("start", 3)
    assert sim.finish("start", 3) == Decisions()  # a duplicate after a lost lease
    assert sim.entered() == ["start", "double"]


def test_cancel_stops_running_steps_drops_pending_ones_and_ends_cancelled() -> None:
    sim = Sim(playbook(END))
    sim.start()
    sim.finish("short", {"stdout": "s"})  # `end` is pending now
    d = sim.cancel("user asked")
    assert d.final == "CANCELLED" and d.error == "cancelled: user asked"
    assert d.cancel == ["long"]
    assert d.steps == {
        "long": StepRun("long", "cancelled", error="cancelled: user asked", attempts=1),
        "end": StepRun("end", "cancelled", error="cancelled: user asked"),
    }
    assert d.events == [Event("execution.cancelled", None, "CANCELLED", error="user asked")]
    assert sim.cancel() == Decisions()  # already over
    assert sim.finish("long", "late") == Decisions()


def test_a_step_entered_again_counts_its_attempts() -> None:
    sim = Sim(
        playbook(
            """\
workload: {count: 0}
workflow:
  - step: start
    next: poll
  - step: poll
    tool: {kind: http, url: "http://h"}
    set: {ctx.count: "{{ count + 1 }}"}
    next:
      - {step: poll, when: "{{ poll.data.state != 'ready' and count < 5 }}"}
      - {step: done}
  - step: done
"""
        )
    )
    sim.start()
    sim.finish("poll", {"data": {"state": "waiting"}})
    sim.finish("poll", {"data": {"state": "waiting"}})
    d = sim.finish("poll", {"data": {"state": "ready"}})
    assert d.final == "COMPLETED"
    assert sim.entered() == ["start", "poll", "poll", "poll", "done"]
    assert sim.state is not None and sim.state.steps["poll"].attempts == 3 and sim.state.ctx == {"count": 3}


def test_a_cycle_of_steps_without_tools_stops() -> None:
    sim = Sim(playbook("workflow:\n  - step: start\n    next: a\n  - step: a\n    next: start\n"))
    d = sim.start()
    assert d.final == "FAILED"
    assert d.error is not None and "ran without a tool in one go (a cycle?)" in d.error
    assert len([e for e in d.events if e.type == "step.enter"]) == decide.MAX_STEPS_PER_DECISION


def test_the_callers_state_is_never_changed() -> None:
    sim = Sim(playbook(LINEAR))
    sim.start()
    assert sim.state is not None
    before = repr(sim.state)
    decide.step_finished(sim.pb, sim.state, "start", True, 3, None)
    decide.cancel(sim.pb, sim.state, None)
    assert repr(sim.state) == before


def test_a_commands_scope_is_the_context_when_it_was_dispatched() -> None:
    sim = Sim(
        playbook(
            """\
workflow:
  - step: start
    next: {spec: {mode: inclusive}, arcs: [pipe, later]}
  - step: pipe
    tool: [{name: a, kind: shell, command: "echo {{ ctx.x | default('unset') }}"}]
  - step: later
    set: {ctx.x: written after}
"""
        )
    )
    sim.start()
    assert sim.tool("pipe")["scope"]["ctx"] == {}
    assert sim.state is not None and sim.state.ctx == {"x": "written after"}


def test_changed_step_runs_are_listed_in_the_order_they_last_changed() -> None:
    sim = Sim(
        playbook(
            """\
workflow:
  - step: start
    next: {spec: {mode: inclusive}, arcs: [a, b]}
  - step: a
    next: again
  - step: b
    tool: {kind: noop}
  - step: again
    next: {arcs: [{step: a, when: "{{ not ctx.looped | default(false) }}", set: {ctx.looped: true}}]}
"""
        )
    )
    d = sim.start()
    # `a` and `again` ran twice; the step that finished last is listed last, not where it first changed
    exits = [e.node_name for e in d.events if e.type == "step.exit"]
    assert exits == ["start", "a", "b", "again", "a", "again"]
    assert list(d.steps) == ["start", "b", "a", "again"]
    assert (d.steps["a"].attempts, d.steps["again"].attempts) == (2, 2)


def test_a_policys_context_writes_land_before_the_arcs_are_evaluated() -> None:
    sim = Sim(
        playbook(
            """\
            workflow:
              - step: start
                tool: {kind: http, url: "http://h/x"}
                next: [{step: missing, when: "{{ ctx.status == 404 }}"}, {step: found}]
              - step: missing
              - step: found
            """
        )
    )
    sim.start()
    d = sim.finish("start", {"status": "error"}, writes={"ctx.status": 404})
    assert d.ctx == {"status": 404}
    assert "missing" in sim.entered() and "found" not in sim.entered()


def test_a_fan_in_below_a_loop_waits_for_the_loop_to_end() -> None:
    sim = Sim(
        playbook(
            """\
            workflow:
              - step: start
                next: {spec: {mode: inclusive}, arcs: [many, one]}
              - step: many
                loop: {in: [1, 2], iterator: n, spec: {mode: parallel}}
                tool: {kind: python, code: "result = n"}
                input: {n: "{{ n }}"}
                next: join
              - step: one
                tool: {kind: python, code: "result = 0"}
                next: join
              - step: join
                tool: {kind: python, code: "result = xs", input: {xs: "{{ many }}"}}
            """
        )
    )
    sim.start()
    sim.finish("one", 0)
    sim.finish_iteration("many", 1, 2)
    assert sim.state is not None and sim.state.steps["join"].status == "pending"
    d = sim.finish_iteration("many", 0, 1)
    assert [(x.step, x.tool["input"]) for x in d.dispatch] == [("join", {"xs": [1, 2]})]
    assert sim.entered().count("join") == 1
