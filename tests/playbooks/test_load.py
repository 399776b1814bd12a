"""50 executions of a 5-step playbook started at once all complete, each step entered once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.playbooks.conftest import Playbooks, enters

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

FIVE = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: five, path: tests/five}
workload: {x: 0}
workflow:
  - step: start
    tool: {kind: python, code: "result = int(x) + 1", input: {x: "{{ x }}"}}
    next: two
  - step: two
    tool: {kind: shell, command: "echo {{ start }}"}
    next: three
  - step: three
    tool: {kind: python, code: "result = int(out) * 10", input: {out: "{{ two.stdout | trim }}"}}
    next: four
  - step: four
    tool: {kind: noop, input: {value: "{{ three }}"}}
    next: five
  - step: five
    tool:
      kind: python
      code: "result = {'x': x, 'value': value}"
      input: {x: "{{ x }}", value: "{{ four.value }}"}
"""


def test_fifty_executions_at_once(playbooks: Playbooks) -> None:
    playbooks.register(FIVE)
    with ThreadPoolExecutor(max_workers=50) as pool:
        ids = list(pool.map(lambda x: playbooks.execute("tests/five", {"x": x}), range(50)))
    assert len(set(ids)) == 50
    for x, execution_id in enumerate(ids):
        execution = playbooks.wait_ended(execution_id, timeout=240)
        assert execution["status"] == "COMPLETED", (execution["error"], execution["steps"])
        assert execution["result"] == {"x": x, "value": (x + 1) * 10}
        assert enters(playbooks.events(execution_id)) == dict.fromkeys(
            ["start", "two", "three", "four", "five"], 1
        )
