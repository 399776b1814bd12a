"""The batch routes against the real server: each item answered as its single call would be.

`POST /api/commands/claims` and `POST /api/commands/events` carry several items; one refused or
invalid item is answered in its place and the others are applied; a retried batch is as safe as
a retried single call (same leases, no second record).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.auth import CLIENT_TOKEN, bearer
from tests.server.conftest import command_of, execution, pg_fetch, stream_notices, submit, wait_for
from tests.server.test_step_commands import start, step_commands
from tests.services import Nats

pytestmark = pytest.mark.integration

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def claim_item(command_id: str, worker_id: str = "w1", **fields: Any) -> dict[str, Any]:
    return {"command_id": command_id, "worker_id": worker_id, "lease_seconds": 30, **fields}


def event_item(
    command_id: str, claim: dict[str, Any], kind: str = "completed", **fields: Any
) -> dict[str, Any]:
    payload = {"result": command_id} if kind == "completed" else {"error": "it failed"}
    return {
        "command_id": command_id,
        "worker_id": "w1",
        "attempt": claim["attempt"],
        "lease": claim["lease"],
        "type": kind,
        "payload": payload,
        "seq": 1,
        **fields,
    }


def answers(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["answers"]
    return found


def events_of(pg_env: dict[str, str], command_id: str) -> list[tuple[str, int]]:
    """The command's events since it was created: (type, attempt)."""
    rows = pg_fetch(
        pg_env,
        """
        SELECT type, attempt FROM noetl.events WHERE command_id = $1 AND type <> 'created'
        ORDER BY event_id
        """,
        uuid.UUID(command_id),
    )
    return [(r["type"], r["attempt"]) for r in rows]


def claim_three(api: httpx.Client) -> tuple[list[str], list[dict[str, Any]]]:
    ids = [submit(api)["command_id"] for _ in range(3)]
    got = answers(api.post("/api/commands/claims", json={"claims": [claim_item(c) for c in ids]}))
    assert [a["status"] for a in got] == [200, 200, 200]
    return ids, [a["claim"] for a in got]


def test_several_claims_in_one_call_each_take_their_command(
    api: httpx.Client, pg_env: dict[str, str]
) -> None:
    ids = [submit(api)["command_id"] for _ in range(3)]
    items = [claim_item(c, request_id=f"r{i}", start=i != 1) for i, c in enumerate(ids)]
    got = answers(api.post("/api/commands/claims", json={"claims": items}))

    assert [a["status"] for a in got] == [200, 200, 200]
    claims = [a["claim"] for a in got]
    assert [c["command_id"] for c in claims] == ids  # answered in the items' order
    assert [c["attempt"] for c in claims] == [1, 1, 1]
    assert [c["started"] for c in claims] == [True, False, True]
    assert len({c["lease"] for c in claims}) == 3  # each attempt its own secret
    assert all(c["tool"] == {"kind": "shell", "command": "echo hi"} for c in claims)
    for i, cid in enumerate(ids):
        view = command_of(api, execution_of(api, cid, pg_env))
        assert (view["status"], view["worker_id"], view["attempt"]) == ("claimed", "w1", 1)
        started = [("started", 1)] if i != 1 else []
        assert events_of(pg_env, cid) == [("claimed", 1), *started]


def execution_of(api: httpx.Client, command_id: str, pg_env: dict[str, str]) -> str:
    rows = pg_fetch(
        pg_env, "SELECT execution_id FROM noetl.commands WHERE command_id = $1", uuid.UUID(command_id)
    )
    return str(rows[0]["execution_id"])


def test_each_claim_gets_its_own_answer_and_one_bad_item_fails_nothing_else(
    api: httpx.Client, pg_env: dict[str, str]
) -> None:
    held = submit(api)["command_id"]
    assert api.post(f"/api/commands/{held}/claim", json={"worker_id": "w2"}).status_code == 200
    done = submit(api)["command_id"]
    first = api.post(f"/api/commands/{done}/claim", json={"worker_id": "w2"}).json()
    report = {k: v for k, v in event_item(done, first).items() if k != "command_id"}
    stored = api.post(f"/api/commands/{done}/events", json={**report, "worker_id": "w2"})
    assert stored.json() == {"stored": True}
    free = submit(api)["command_id"]
    items = [
        claim_item(held),
        claim_item(UNKNOWN),
        claim_item(free),
        claim_item(done),
        claim_item(free, lease_seconds=-1),
        claim_item(free, request_id="another"),  # a second claim of a command in the same batch
    ]
    got = answers(api.post("/api/commands/claims", json={"claims": items}))

    assert [a["status"] for a in got] == [409, 404, 200, 409, 422, 409]
    assert got[0]["detail"] == f"command {held} is claimed by worker w2 (attempt 1)"
    assert got[1]["detail"] == f"no command {UNKNOWN}"
    assert got[3]["detail"] == f"command {done} is already completed"
    assert got[4]["detail"].startswith("claims.4.lease_seconds: Input should be greater than 0")
    assert got[5]["detail"] == f"command {free} is claimed by worker w1 (attempt 1)"
    assert [a["claim"] is None for a in got] == [True, True, False, True, True, True]
    # The single call answers the same refusals.
    single = api.post(f"/api/commands/{held}/claim", json={"worker_id": "w1"})
    assert (single.status_code, single.json()["detail"]) == (409, got[0]["detail"])
    assert events_of(pg_env, held) == [("claimed", 1)]
    assert events_of(pg_env, free) == [("claimed", 1)]


def test_a_retried_claim_batch_gets_the_same_leases_back(api: httpx.Client, pg_env: dict[str, str]) -> None:
    ids = [submit(api)["command_id"] for _ in range(2)]
    body = {"claims": [claim_item(c, request_id=f"req-{c}", start=True) for c in ids]}
    first = answers(api.post("/api/commands/claims", json=body))
    again = answers(api.post("/api/commands/claims", json=body))  # the first answer was lost

    assert [a["status"] for a in again] == [200, 200]
    assert [(a["claim"]["attempt"], a["claim"]["lease"]) for a in again] == [
        (a["claim"]["attempt"], a["claim"]["lease"]) for a in first
    ]
    for cid in ids:
        assert events_of(pg_env, cid) == [("claimed", 1), ("started", 1)]  # recorded once
    # Another worker with the same request id gets no lease.
    other = answers(
        api.post("/api/commands/claims", json={"claims": [{**body["claims"][0], "worker_id": "w9"}]})
    )
    assert other[0]["status"] == 409


def test_events_in_one_call_with_one_lost_lease(api: httpx.Client, pg_env: dict[str, str]) -> None:
    ids, claims = claim_three(api)
    lost = {**event_item(ids[2], claims[2]), "lease": "not-the-secret"}
    items = [event_item(ids[0], claims[0]), event_item(ids[1], claims[1], "failed"), lost]
    got = answers(api.post("/api/commands/events", json={"events": items}))

    assert [(a["status"], a["stored"]) for a in got] == [(200, True), (200, True), (409, None)]
    assert "wrong lease secret for attempt 1" in got[2]["detail"]
    views = [execution(api, execution_of(api, cid, pg_env)) for cid in ids]
    assert [v["status"] for v in views] == ["COMPLETED", "FAILED", "RUNNING"]
    assert (views[0]["result"], views[1]["error"]) == (ids[0], "it failed")
    assert views[2]["commands"][0]["status"] == "claimed"

    # Retried (the answer was lost): repeats are recognised, nothing is stored twice.
    again = answers(api.post("/api/commands/events", json={"events": items}))
    assert [(a["status"], a["stored"]) for a in again] == [(200, False), (200, False), (409, None)]
    assert events_of(pg_env, ids[0]) == [("claimed", 1), ("completed", 1)]
    assert events_of(pg_env, ids[1]) == [("claimed", 1), ("failed", 1)]
    assert events_of(pg_env, ids[2]) == [("claimed", 1)]


def test_event_items_refused_each_in_its_place(api: httpx.Client, pg_env: dict[str, str]) -> None:
    ids, claims = claim_three(api)
    items = [
        event_item(UNKNOWN, claims[0]),
        event_item(ids[0], claims[0], payload={"result": "nul \u0000 in text"}),  # not storable
        event_item(ids[1], claims[1], "failed", payload={}),  # a failed event says why
        event_item(ids[2], claims[2]),
        event_item(ids[2], claims[2], "failed", seq=2),  # the same command again: already completed
        event_item(ids[0], claims[0], "progress", payload={"done": 1}),  # not final
    ]
    got = answers(api.post("/api/commands/events", json={"events": items}))

    assert [a["status"] for a in got] == [404, 422, 422, 200, 409, 200]
    assert got[0]["detail"] == f"no command {UNKNOWN}"
    assert got[1]["detail"] == "events.1.payload: Value error, must not contain NUL characters"
    assert got[2]["detail"] == "events.2: Value error, a failed event needs payload.error, a readable string"
    assert got[4]["detail"] == f"command {ids[2]} is already completed"
    assert [a["stored"] for a in got] == [None, None, None, True, None, True]
    assert events_of(pg_env, ids[0]) == [("claimed", 1), ("progress", 1)]
    assert events_of(pg_env, ids[1]) == [("claimed", 1)]
    assert events_of(pg_env, ids[2]) == [("claimed", 1), ("completed", 1)]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"claims": []}, "claims: List should have at least 1 item after validation, not 0"),
        ({"claims": {"command_id": UNKNOWN}}, "claims: Input should be a valid list"),
        ({"claims": ["w1"]}, "claims.0: Input should be a valid dictionary"),
        ({"claim": []}, "claims: Field required"),
    ],
)
def test_a_malformed_batch_is_422_with_one_line(api: httpx.Client, body: dict[str, Any], detail: str) -> None:
    refused = api.post("/api/commands/claims", json=body)
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith(detail)


def test_an_oversized_events_batch_is_422(api: httpx.Client) -> None:
    item = {"command_id": UNKNOWN}
    refused = api.post("/api/commands/events", json={"events": [item] * 1001})
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("events: List should have at most 1000 items")


def test_batch_routes_take_the_worker_token_only(api: httpx.Client) -> None:
    for path in ("/api/commands/claims", "/api/commands/events"):
        refused = httpx.post(api.base_url.join(path), json={}, headers=bearer(CLIENT_TOKEN))
        assert refused.status_code == 403, path


def test_a_step_and_a_submit_ending_in_one_batch(
    api: httpx.Client, nats: Nats, pg_env: dict[str, str]
) -> None:
    execution_id = start(api)
    (first,) = step_commands(pg_env, execution_id)
    step, alone = first["command_id"], submit(api)["command_id"]
    claims = [
        a["claim"]
        for a in answers(
            api.post("/api/commands/claims", json={"claims": [claim_item(step), claim_item(alone)]})
        )
    ]
    result = {"exit_code": 0, "stdout": "one\n", "stderr": ""}
    items = [
        {**event_item(step, claims[0]), "payload": {"result": result}},
        event_item(alone, claims[1]),
    ]
    got = answers(api.post("/api/commands/events", json={"events": items}))

    assert [(a["status"], a["stored"]) for a in got] == [(200, True), (200, True)]
    # The step's end moved the playbook on (the next command rendered with its result, published);
    # the submit's end ended its execution.
    commands = step_commands(pg_env, execution_id)
    assert [(c["step"], c["status"]) for c in commands] == [("start", "completed"), ("second", "pending")]
    assert commands[1]["tool"] == {"kind": "shell", "command": "echo one two"}
    second = commands[1]["command_id"]
    wait_for(lambda: any(m == f"{second}:1" for m, _ in stream_notices(nats.url)), what="second's notice")
    done = execution(api, execution_of(api, alone, pg_env))
    assert (done["status"], done["result"]) == ("COMPLETED", alone)
