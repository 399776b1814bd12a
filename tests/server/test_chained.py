"""Chained dispatch, driven by hand (this test is the worker): a final event that says ``take: 1``
is answered with the next step's command, claimed for its sender in the completion's
transaction, and that command's notice is never published.

A real server, PostgreSQL and NATS; no worker process: the test claims and reports itself, so it
can lose an answer, let a handed lease expire, cancel in between, and leave ``take`` out.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests.server.conftest import pg_fetch, stream_notices, submit, wait_for
from tests.services import Nats

pytestmark = pytest.mark.integration

THREE_STEPS = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: three, path: tests/three}
workflow:
  - step: start
    tool: {kind: shell, command: "echo one"}
    next: second
  - step: second
    tool: {kind: shell, command: "echo {{ start.stdout | trim }} two"}
    next: third
  - step: third
    tool: {kind: shell, command: "echo {{ second.stdout | trim }} three"}
"""
WORKER = "w1"


def start(api: httpx.Client) -> str:
    assert api.post("/api/catalog/register", json={"content": THREE_STEPS}).status_code == 200
    answer = api.post("/api/execute", json={"path": "tests/three"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["execution_id"])


def commands_of(pg_env: dict[str, str], execution_id: str) -> list[dict[str, Any]]:
    return pg_fetch(
        pg_env,
        "SELECT command_id::text, step, status, attempt, worker_id, published_at, claim_request "
        "FROM noetl.commands WHERE execution_id = $1::uuid ORDER BY created_at",
        uuid.UUID(execution_id),
    )


def claim_events(pg_env: dict[str, str], command_id: str) -> list[tuple[str, str, int]]:
    rows = pg_fetch(
        pg_env,
        "SELECT type, worker_id, attempt FROM noetl.events WHERE command_id = $1::uuid "
        "AND type IN ('claimed', 'started') ORDER BY event_id",
        uuid.UUID(command_id),
    )
    return [(r["type"], r["worker_id"], r["attempt"]) for r in rows]


def first_claim(api: httpx.Client, pg_env: dict[str, str], execution_id: str) -> dict[str, Any]:
    (first,) = commands_of(pg_env, execution_id)
    claim = api.post(f"/api/commands/{first['command_id']}/claim", json={"worker_id": WORKER, "start": True})
    assert claim.status_code == 200, claim.text
    return dict(claim.json())


def ended(claim: dict[str, Any], stdout: str, **more: Any) -> dict[str, Any]:
    """The body of a ``completed`` event of ``claim``'s attempt."""
    result = {"exit_code": 0, "stdout": stdout, "stderr": ""}
    lease = {"attempt": claim["attempt"], "lease": claim["lease"]}
    return {
        "worker_id": WORKER,
        **lease,
        "type": "completed",
        "payload": {"result": result},
        "seq": 1,
        **more,
    }


def report(api: httpx.Client, claim: dict[str, Any], stdout: str, **more: Any) -> dict[str, Any]:
    answer = api.post(f"/api/commands/{claim['command_id']}/events", json=ended(claim, stdout, **more))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def handed_metric(api: httpx.Client) -> float:
    found = re.search(r"^noetl_commands_handed_total (\S+)$", api.get("/metrics").text, re.M)
    assert found, "noetl_commands_handed_total is not exported"
    return float(found.group(1))


def test_each_step_is_handed_in_the_answer_to_the_one_before(
    api: httpx.Client, nats: Nats, pg_env: dict[str, str]
) -> None:
    execution_id = start(api)
    claim = first_claim(api, pg_env, execution_id)
    # The single route: start's end hands `second` to its sender.
    answer = report(api, claim, "one\n", take=1, lease_seconds=30)
    second = answer["next"]
    assert answer["stored"] is True
    assert (second["attempt"], second["started"]) == (1, True)
    assert second["tool"] == {"kind": "shell", "command": "echo one two"}
    # The batch route: second's end hands `third` in its item's answer.
    batch = api.post(
        "/api/commands/events",
        json={"events": [{"command_id": second["command_id"], **ended(second, "one two\n", take=1)}]},
    )
    assert batch.status_code == 200, batch.text
    (item,) = batch.json()["answers"]
    assert (item["status"], item["stored"]) == (200, True)
    third = item["next"]
    assert third["tool"] == {"kind": "shell", "command": "echo one two three"}
    # The last step's end has nothing to hand: the answer is what it always was.
    assert report(api, third, "one two three\n", take=1) == {"stored": True}

    view = api.get(f"/api/executions/{execution_id}").json()
    assert view["status"] == "COMPLETED"
    assert view["result"] == {"exit_code": 0, "stdout": "one two three\n", "stderr": ""}
    rows = commands_of(pg_env, execution_id)
    assert [(r["step"], r["status"], r["attempt"], r["worker_id"]) for r in rows] == [
        ("start", "completed", 1, WORKER),
        ("second", "completed", 1, WORKER),
        ("third", "completed", 1, WORKER),
    ]
    # Handed: claimed under the report's key, with the claim route's events, never published.
    for row, handed in zip(rows[1:], (second, third), strict=True):
        assert row["command_id"] == handed["command_id"]
        assert row["claim_request"].startswith("chain ") and row["published_at"] is None
        assert claim_events(pg_env, row["command_id"]) == [("claimed", WORKER, 1), ("started", WORKER, 1)]
    notices = [message for message, _ in stream_notices(nats.url)]
    assert notices == [f"{rows[0]['command_id']}:1"]  # start's alone
    assert handed_metric(api) == 2


def test_a_repeated_report_gets_the_same_command_back(api: httpx.Client, pg_env: dict[str, str]) -> None:
    execution_id = start(api)
    claim = first_claim(api, pg_env, execution_id)
    first = report(api, claim, "one\n", take=1)
    # Its answer was lost: the worker sends the same report again.
    again = report(api, claim, "one\n", take=1)
    assert again["stored"] is False
    assert {k: again["next"][k] for k in ("command_id", "attempt", "lease")} == {
        k: first["next"][k] for k in ("command_id", "attempt", "lease")
    }
    second = commands_of(pg_env, execution_id)[1]
    assert (second["status"], second["attempt"]) == ("claimed", 1)
    assert claim_events(pg_env, second["command_id"]) == [("claimed", WORKER, 1), ("started", WORKER, 1)]
    # A repeat without take (an older worker) is answered as before.
    assert report(api, claim, "one\n") == {"stored": False}


def test_without_take_the_next_command_is_published_as_before(
    api: httpx.Client, nats: Nats, pg_env: dict[str, str]
) -> None:
    execution_id = start(api)
    claim = first_claim(api, pg_env, execution_id)
    assert report(api, claim, "one\n") == {"stored": True}
    assert report(api, claim, "one\n", take=0) == {"stored": False}
    second = commands_of(pg_env, execution_id)[1]
    assert (second["status"], second["attempt"], second["worker_id"]) == ("pending", 0, None)
    wait_for(
        lambda: f"{second['command_id']}:1" in [m for m, _ in stream_notices(nats.url)],
        what="second's notice published",
    )
    assert handed_metric(api) == 0


def test_a_take_out_of_range_is_refused(api: httpx.Client, pg_env: dict[str, str]) -> None:
    execution_id = start(api)
    claim = first_claim(api, pg_env, execution_id)
    answer = api.post(f"/api/commands/{claim['command_id']}/events", json=ended(claim, "one\n", take=2))
    assert answer.status_code == 422
    assert "take" in answer.json()["detail"]
    assert [r["status"] for r in commands_of(pg_env, execution_id)] == ["claimed"]


def test_a_cancelled_execution_hands_out_nothing(api: httpx.Client, pg_env: dict[str, str]) -> None:
    execution_id = start(api)
    claim = first_claim(api, pg_env, execution_id)
    assert api.post(f"/api/executions/{execution_id}/cancel", json={}).status_code == 200
    late = api.post(f"/api/commands/{claim['command_id']}/events", json=ended(claim, "one\n", take=1))
    assert late.status_code == 409
    assert "next" not in late.json()
    assert [(r["step"], r["status"]) for r in commands_of(pg_env, execution_id)] == [("start", "cancelled")]
    assert handed_metric(api) == 0


def test_a_handed_command_whose_lease_expires_is_published_and_runs_again(
    api: httpx.Client, nats: Nats, pg_env: dict[str, str]
) -> None:
    execution_id = start(api)
    claim = first_claim(api, pg_env, execution_id)
    # Handed under a short lease that its worker never renews (it died holding it).
    second = report(api, claim, "one\n", take=1, lease_seconds=0.2)["next"]
    cid = second["command_id"]
    # The reaper re-queues it and, as it was never published, publishes it now: attempt 2.
    wait_for(lambda: f"{cid}:2" in [m for m, _ in stream_notices(nats.url)], what="re-published")
    assert f"{cid}:1" not in [m for m, _ in stream_notices(nats.url)]
    retry = api.post(f"/api/commands/{cid}/claim", json={"worker_id": "w2"}).json()
    assert retry["attempt"] == 2
    # The dead worker's late report is refused; the new holder's ends the step once.
    late = api.post(f"/api/commands/{cid}/events", json=ended(second, "one two\n", take=1))
    assert late.status_code == 409
    body = {**ended(retry, "one two\n"), "worker_id": "w2"}
    done = api.post(f"/api/commands/{cid}/events", json=body)
    assert done.json() == {"stored": True}
    rows = commands_of(pg_env, execution_id)
    assert [(r["step"], r["status"], r["attempt"]) for r in rows] == [
        ("start", "completed", 1),
        ("second", "completed", 2),
        ("third", "pending", 0),
    ]
    events = pg_fetch(
        pg_env,
        "SELECT type FROM noetl.events WHERE command_id = $1::uuid AND type = 'lease_expired'",
        uuid.UUID(cid),
    )
    assert len(events) == 1


def test_a_submitted_commands_end_hands_nothing(api: httpx.Client) -> None:
    ids = submit(api)  # `noetl submit`: one command, nothing follows it
    cid = ids["command_id"]
    claim = api.post(f"/api/commands/{cid}/claim", json={"worker_id": WORKER}).json()
    assert report(api, {**claim, "command_id": cid}, "done\n", take=1) == {"stored": True}
    assert api.get(f"/api/executions/{ids['execution_id']}").json()["status"] == "COMPLETED"
    assert handed_metric(api) == 0
