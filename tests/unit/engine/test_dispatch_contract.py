"""What the engine dispatches is what the workers accept: every command `tool` it builds passes
the kind's own argument model (the one the worker checks before running), unchanged by it."""

from __future__ import annotations

from pathlib import Path

import pytest

from noetl.engine.playbook import parse_playbook
from noetl.tools.registry import parse_tool, tool_spec
from tests.unit.engine.sim import Sim, playbook

EXAMPLES = Path(__file__).parents[3] / "examples"

KINDS = """\
workload: {base: "http://127.0.0.1:9", n: 2}
workbook:
  - name: area
    tool: {kind: python, code: "result = {'a': w * h}", input: {h: 2}}
    assert: {expects: [w], returns: [a]}
workflow:
  - step: start
    tool:
      kind: python
      code: "result = context['workload']['n'] + a"
      args: {a: 1}
      libs: {m: math}
    input: {b: "{{ n }}"}
    next: {spec: {mode: inclusive}, arcs: [sh, web, wb, list]}
  - step: sh
    tool: {kind: shell, cmds: ["echo {{ start }}"], env: {N: "{{ n }}"}, timeout_seconds: 5}
  - step: web
    tool:
      kind: http
      method: post
      endpoint: "{{ base }}/x"
      params: {q: "{{ n }}", many: [1, 2]}
      payload: {v: "{{ start }}"}
      headers: {X: "y"}
      timeout_seconds: 3
  - step: wb
    tool: {kind: workbook, name: area, input: {w: 3}}
  - step: list
    input: {k: 1}
    tool:
      - {name: one, kind: http, url: "{{ base }}/{{ k }}"}
      - {kind: workbook, name: area}
"""


def test_every_kind_the_engine_dispatches_is_accepted_as_it_is() -> None:
    sim = Sim(playbook(KINDS))
    sim.start()
    sim.finish("start", 5)
    assert set(sim.running) == {"sh", "web", "wb", "list"}
    for step, dispatch in sim.running.items():
        _, args = parse_tool(dispatch.tool)
        assert tool_spec(args) == dispatch.tool, step
    assert sim.tool("web")["method"] == "POST"  # as the kind reads it


def test_a_rendered_tool_its_kind_refuses_fails_the_step_before_any_command() -> None:
    sim = Sim(
        playbook(
            "workload: {u: not-a-url}\nworkflow:\n  - step: start\n    tool: {kind: http, url: '{{ u }}'}\n"
        )
    )
    d = sim.start()
    assert d.dispatch == [] and d.final == "FAILED"
    assert d.error is not None
    assert d.error.startswith("step 'start' failed: http tool: url: String should match pattern")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_examples_first_commands_are_accepted(path: Path) -> None:
    sim = Sim(parse_playbook(path.read_text()))
    sim.start()
    dispatched = [*sim.running.values(), *sim.iterations.values()]
    assert dispatched or sim.children, "every example starts with a command or a child execution"
    for dispatch in dispatched:
        _, args = parse_tool(dispatch.tool)
        # The policy travels beside the kind's arguments, as written, for the worker.
        assert tool_spec(args) == {k: v for k, v in dispatch.tool.items() if k != "spec"}


def test_a_tool_policy_reaches_the_worker_unrendered() -> None:
    sim = Sim(parse_playbook((EXAMPLES / "retry_http.yaml").read_text()))
    sim.start({"base_url": "http://127.0.0.1:9"})
    tool = sim.tool("fetch")
    assert tool["url"] == "http://127.0.0.1:9/flaky"
    assert tool["spec"]["policy"]["rules"][0]["when"] == "{{ output.http.status >= 500 }}"
