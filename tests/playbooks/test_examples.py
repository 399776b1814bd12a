"""Every playbook in examples/ registered and run to COMPLETED on a real server and workers,
with its steps' results checked (the values each example's header promises)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.playbooks.conftest import EXAMPLES, Playbooks, enters

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def run_example(playbooks: Playbooks, name: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    execution = playbooks.run((EXAMPLES / f"{name}.yaml").read_text(), payload)
    assert execution["status"] == "COMPLETED", (execution["error"], execution["steps"])
    assert execution["path"] == f"examples/{name}" and execution["version"] == 1
    return execution


def results(playbooks: Playbooks, execution: dict[str, Any]) -> dict[str, Any]:
    steps = playbooks.steps(execution)
    assert {s["status"] for s in steps.values()} == {"done"}, steps
    return {name: step["result"] for name, step in steps.items()}


def test_every_example_is_tested() -> None:
    tested = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert {p.stem for p in EXAMPLES.glob("*.yaml")} <= tested


def test_hello(playbooks: Playbooks) -> None:
    execution = run_example(playbooks, "hello", {"name": "Ada"})
    assert results(playbooks, execution) == {
        "start": {"greeting": "Hello, Ada!"},
        "end": {"message": "Hello, Ada!", "length": 11},
    }
    assert execution["result"] == {"message": "Hello, Ada!", "length": 11}
    assert execution["workload"] == {"name": "Ada"}
    events = playbooks.events(execution["execution_id"])
    assert enters(events) == {"start": 1, "end": 1}
    kinds = [e["event_type"] for e in events]
    assert kinds[0] == "playbook.initialized" and kinds[-1] == "playbook.completed"


def test_branch(playbooks: Playbooks) -> None:
    large = results(playbooks, run_example(playbooks, "branch", {"amount": 250}))
    assert large["large"] == {"size": "large", "amount": 250}
    assert large["report"] == {"size": "large", "checked": True}
    assert "medium" not in large and "small" not in large
    small = results(playbooks, run_example(playbooks, "branch"))  # the workload's amount, 42
    assert small["small"] == {"size": "small", "amount": 42}
    assert small["report"] == {"size": "small", "checked": True}
    assert set(small) == {"start", "small", "report"}


def test_context(playbooks: Playbooks) -> None:
    execution = run_example(playbooks, "context")
    assert results(playbooks, execution)["summarize"] == {"summary": "3 items, total 6", "route": "sum"}
    assert execution["result"] == {"summary": "3 items, total 6", "route": "sum"}


def test_task_list(playbooks: Playbooks) -> None:
    execution = run_example(playbooks, "task_list")
    assert results(playbooks, execution)["start"] == {"words": 4, "upper": "NOETL RUNS TASK LISTS"}


def test_workbook(playbooks: Playbooks) -> None:
    steps = results(playbooks, run_example(playbooks, "workbook"))
    assert (steps["start"], steps["second"], steps["total"]) == ({"area": 12}, {"area": 30}, {"sum": 42})


def test_http(playbooks: Playbooks) -> None:
    steps = results(playbooks, run_example(playbooks, "http", {"base_url": playbooks.url}))
    fetch = steps["fetch"]
    assert (fetch["status_code"], fetch["data"], fetch["body"]) == (200, {"status": "ok"}, {"status": "ok"})
    assert fetch["headers"]["content-type"].startswith("application/json")
    assert steps["check"] == {"healthy": True, "status_code": 200}


def test_shell(playbooks: Playbooks) -> None:
    steps = results(playbooks, run_example(playbooks, "shell"))
    assert steps["start"] == {"exit_code": 0, "stdout": "hello from noetl\n3\n", "stderr": ""}
    assert steps["count"] == {"lines": 2, "last": "3"}
