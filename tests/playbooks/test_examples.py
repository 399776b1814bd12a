"""Every playbook in examples/ registered and run to COMPLETED on a real server and workers,
with its steps' results checked (the values each example's header promises)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.playbooks.conftest import EXAMPLES, Playbooks, count, enters, scripted_http

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


def kinds_of(playbooks: Playbooks, execution: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(e["event_type"], e["node_name"]) for e in playbooks.events(execution["execution_id"])]


def test_loop_sequential(playbooks: Playbooks) -> None:
    execution = run_example(playbooks, "loop_sequential")
    steps = results(playbooks, execution)
    assert steps["greet"] == ["1. Paris", "2. Oslo", "3. Rome"]
    assert steps["end"] == {"count": 3, "first": "1. Paris"}
    kinds = kinds_of(playbooks, execution)
    assert kinds.count(("call.done", "greet")) == 3 and kinds.count(("loop.done", "greet")) == 1
    assert kinds.count(("step.enter", "greet")) == 1


def test_loop_parallel(playbooks: Playbooks) -> None:
    for limit in (2, 5):
        execution = run_example(playbooks, "loop_parallel", {"max_in_flight": limit})
        steps = results(playbooks, execution)
        assert (steps["square"], steps["total"]) == ([1, 4, 9, 16, 25], 55)
        kinds = kinds_of(playbooks, execution)
        assert kinds.count(("call.done", "square")) == 5 and kinds.count(("loop.done", "square")) == 1
        assert playbooks.steps(execution)["square"]["iterations"] == {
            "total": 5,
            "done": 5,
            "failed": 0,
            "running": 0,
        }


def test_fan_in(playbooks: Playbooks) -> None:
    execution = run_example(playbooks, "fan_in")
    assert results(playbooks, execution)["reduce"] == {"a": 12, "b": 7, "sum": 19}
    kinds = kinds_of(playbooks, execution)
    assert kinds.count(("step.enter", "reduce")) == 1
    entered = kinds.index(("step.enter", "reduce"))
    assert entered > kinds.index(("step.exit", "a2")) and entered > kinds.index(("step.exit", "b1"))


def test_retry_http(playbooks: Playbooks) -> None:
    with scripted_http(
        {"/flaky": [(503, {"busy": True}), (503, {"busy": True}), (200, {"ok": True})]}
    ) as web:
        base_url = f"http://127.0.0.1:{web.server_address[1]}"
        execution = run_example(playbooks, "retry_http", {"base_url": base_url})
        assert web.hits["/flaky"] == 3
    steps = results(playbooks, execution)
    assert steps["check"] == {"ok": True, "status": 200}
    assert steps["fetch"]["status_code"] == 200
    events = playbooks.events(execution["execution_id"])
    retries = [e for e in events if e["event_type"] == "call.retry"]
    assert [(e["node_name"], e["attempt"]) for e in retries] == [("fetch", 1), ("fetch", 2)]
    assert count(events, "call.done", "fetch") == 1 and count(events, "call.error") == 0
    assert enters(events)["fetch"] == 1
    # The retried attempts come before the call's end.
    ids = {e["event_type"]: e["event_id"] for e in events if e["node_name"] == "fetch"}
    assert ids["call.retry"] < ids["call.done"]


def test_route_status(playbooks: Playbooks) -> None:
    scripts: dict[str, list[tuple[int, Any]]] = {
        "/things/1": [(200, {"id": 1})],
        "/things/2": [(404, {"error": "no thing 2"})],
    }
    with scripted_http(scripts) as web:
        base_url = f"http://127.0.0.1:{web.server_address[1]}"
        found = results(
            playbooks, run_example(playbooks, "route_status", {"base_url": base_url, "path": "/things/1"})
        )
        missing = results(
            playbooks, run_example(playbooks, "route_status", {"base_url": base_url, "path": "/things/2"})
        )
    assert found["found"] == {"found": True, "status": 200} and "missing" not in found
    assert missing["missing"] == {"found": False, "status": 404} and "found" not in missing


def test_child_a(playbooks: Playbooks) -> None:
    assert run_example(playbooks, "child_a", {"x": 4})["result"] == {"value": 8}


def test_child_b(playbooks: Playbooks) -> None:
    assert run_example(playbooks, "child_b", {"x": 4})["result"] == {"value": 16}


def test_parent(playbooks: Playbooks) -> None:
    for child in ("child_a", "child_b"):
        playbooks.register((EXAMPLES / f"{child}.yaml").read_text())
    execution = run_example(playbooks, "parent", {"x": 3})
    steps = results(playbooks, execution)
    assert (steps["double"], steps["square"], steps["total"]) == ({"value": 6}, {"value": 9}, 15)
    children = playbooks.children(execution["execution_id"])
    assert sorted((c["path"], c["status"]) for c in children) == [
        ("examples/child_a", "COMPLETED"),
        ("examples/child_b", "COMPLETED"),
    ]
    assert enters(playbooks.events(execution["execution_id"]))["total"] == 1


def test_duckdb_python(playbooks: Playbooks) -> None:
    steps = results(playbooks, run_example(playbooks, "duckdb_python"))
    assert steps["query"] == [
        {"city": "Oslo", "people": 2, "total": 180.5, "first": "2024-01-02"},
        {"city": "Paris", "people": 1, "total": 99.25, "first": "2024-03-04"},
    ]
    assert steps["summary"] == {"cities": ["Oslo", "Paris"], "grand_total": 279.75}
