"""The engine's hook on the command protocol, driven by hand (this test is the worker): a step's
end is recorded once whatever the worker repeats or loses, and a step whose command dies fails.

A real server, PostgreSQL and NATS; no worker process: the test claims and reports itself, so it
can repeat a completion, let a lease expire, and report from a stale attempt.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.server.conftest import pg_fetch, stream_notices, wait_for
from tests.services import Nats

pytestmark = pytest.mark.integration

TWO_STEPS = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: two, path: tests/two}
workflow:
  - step: start
    tool: {kind: shell, command: "echo one"}
    next: second
  - step: second
    tool: {kind: shell, command: "echo {{ start.stdout | trim }} two"}
"""


def start(api: httpx.Client) -> str:
    assert api.post("/api/catalog/register", json={"content": TWO_STEPS}).status_code == 200
    answer = api.post("/api/execute", json={"path": "tests/two"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["execution_id"])


def step_commands(pg_env: dict[str, str], execution_id: str) -> list[dict[str, Any]]:
    rows = pg_fetch(
        pg_env,
        "SELECT command_id::text, step, status, attempt, tool FROM noetl.commands "
        "WHERE execution_id = $1::uuid ORDER BY created_at",
        execution_id,
    )
    return [{**r, "tool": json.loads(r["tool"])} for r in rows]


def report(
    api: httpx.Client, cid: str, worker: str, claim: dict[str, Any], kind: str, payload: dict[str, Any]
) -> httpx.Response:
    """A worker's event under ``claim`` (its attempt and lease secret)."""
    lease = {"attempt": claim["attempt"], "lease": claim["lease"]}
    return api.post(
        f"/api/commands/{cid}/events",
        json={"worker_id": worker, **lease, "type": kind, "payload": payload, "seq": 1},
    )


def enters(api: httpx.Client, execution_id: str) -> Counter[str]:
    items = api.get(f"/api/executions/{execution_id}/events?limit=1000").json()["items"]
    return Counter(e["node_name"] for e in items if e["event_type"] == "step.enter")


def test_a_repeated_or_stale_completion_moves_the_playbook_once(
    api: httpx.Client, nats: Nats, pg_env: dict[str, str]
) -> None:
    execution_id = start(api)
    (first,) = step_commands(pg_env, execution_id)
    assert (first["step"], first["tool"]) == ("start", {"kind": "shell", "command": "echo one"})
    cid = first["command_id"]
    # Attempt 1 loses its lease (a short one, reaped); attempt 2 runs the step again.
    old = api.post(f"/api/commands/{cid}/claim", json={"worker_id": "old", "lease_seconds": 0.2})
    assert old.status_code == 200
    wait_for(lambda: step_commands(pg_env, execution_id)[0]["status"] == "pending", what="lease reaped")
    claim = api.post(f"/api/commands/{cid}/claim", json={"worker_id": "new", "lease_seconds": 30}).json()
    assert claim["attempt"] == 2
    result = {"exit_code": 0, "stdout": "one\n", "stderr": ""}
    # The old attempt's late completion is refused; the new one's moves the playbook on.
    assert report(api, cid, "old", old.json(), "completed", {"result": result}).status_code == 409
    assert report(api, cid, "new", claim, "completed", {"result": result}).json() == {"stored": True}
    # The same completion again (its answer was lost): stored once, nothing decided twice.
    assert report(api, cid, "new", claim, "completed", {"result": result}).json() == {"stored": False}

    commands = step_commands(pg_env, execution_id)
    assert [(c["step"], c["status"]) for c in commands] == [("start", "completed"), ("second", "pending")]
    # The next step's command was rendered with the first step's result, and published.
    assert commands[1]["tool"] == {"kind": "shell", "command": "echo one two"}
    second = commands[1]["command_id"]
    wait_for(lambda: any(m == f"{second}:1" for m, _ in stream_notices(nats.url)), what="second's notice")
    assert enters(api, execution_id) == {"start": 1, "second": 1}

    claim = api.post(f"/api/commands/{second}/claim", json={"worker_id": "new"}).json()
    done = {"exit_code": 0, "stdout": "one two\n", "stderr": ""}
    assert report(api, second, "new", claim, "completed", {"result": done}).json() == {"stored": True}
    view = api.get(f"/api/executions/{execution_id}").json()
    assert (view["status"], view["result"]) == ("COMPLETED", done)
    steps = {s["name"]: (s["status"], s["attempts"]) for s in view["steps"]}
    assert steps == {"start": ("done", 2), "second": ("done", 1)}
    items = api.get(f"/api/executions/{execution_id}/events").json()["items"]
    assert [e["event_type"] for e in items].count("call.done") == 2


def test_a_step_whose_command_dies_fails_the_execution(api: httpx.Client, pg_env: dict[str, str]) -> None:
    execution_id = start(api)
    (first,) = step_commands(pg_env, execution_id)
    cid = first["command_id"]
    for attempt in (1, 2, 3):  # every lease lost: the command dies after max_attempts (3)
        wait_for(lambda: step_commands(pg_env, execution_id)[0]["status"] == "pending", what="pending")
        claim = api.post(
            f"/api/commands/{cid}/claim", json={"worker_id": f"w{attempt}", "lease_seconds": 0.2}
        )
        assert claim.json()["attempt"] == attempt
    view = wait_for(
        lambda: (v := api.get(f"/api/executions/{execution_id}").json())["status"] != "RUNNING" and v
    )
    assert view["status"] == "FAILED"
    assert "start" in view["error"] and "lease expired 3 times" in view["error"]
    assert [(s["name"], s["status"]) for s in view["steps"]] == [("start", "failed")]
    assert [c["status"] for c in step_commands(pg_env, execution_id)] == ["dead"]
    assert enters(api, execution_id) == {"start": 1}
