"""Claims, leases and events against the real server: exactly one winner, fencing, dedupe."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.auth import RouteAuth
from tests.server.conftest import Server, command_of, execution, pg_fetch, stream_notices, submit, wait_for

pytestmark = pytest.mark.integration


async def _race(url: str, path: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits, auth=RouteAuth()) as client:
        return await asyncio.gather(*(client.post(path, json=body) for body in bodies))


def test_fifty_concurrent_claimers_one_winner(
    server: Server, api: httpx.Client, pg_env: dict[str, str]
) -> None:
    for _ in range(3):
        ids = submit(api)
        path = f"/api/commands/{ids['command_id']}/claim"
        bodies = [{"worker_id": f"w{i}", "lease_seconds": 30} for i in range(50)]
        responses = asyncio.run(_race(server.url, path, bodies))
        codes = sorted(r.status_code for r in responses)
        assert codes == [200] + [409] * 49
        winner = next(r.json() for r in responses if r.status_code == 200)
        assert winner["attempt"] == 1
        assert winner["tool"] == {"kind": "shell", "command": "echo hi"}
        command = command_of(api, ids["execution_id"])
        assert command["status"] == "claimed"
        assert command["attempt"] == 1
        claimed = pg_fetch(
            pg_env,
            "SELECT worker_id FROM noetl.events WHERE command_id = $1 AND type = 'claimed'",
            uuid.UUID(ids["command_id"]),
        )
        assert [c["worker_id"] for c in claimed] == [command["worker_id"]]


def test_claim_of_unknown_or_finished_command(api: httpx.Client) -> None:
    missing = api.post(
        "/api/commands/00000000-0000-4000-8000-000000000000/claim",
        json={"worker_id": "w", "lease_seconds": 5},
    )
    assert missing.status_code == 404
    ids = submit(api)
    cid = ids["command_id"]
    claim = api.post(f"/api/commands/{cid}/claim", json={"worker_id": "w1"})
    assert claim.status_code == 200
    done = api.post(
        f"/api/commands/{cid}/events",
        json={
            "worker_id": "w1",
            "attempt": 1,
            "lease": claim.json()["lease"],
            "type": "completed",
            "payload": {"result": 42},
        },
    )
    assert done.json() == {"stored": True}
    again = api.post(f"/api/commands/{cid}/claim", json={"worker_id": "w2"})
    assert again.status_code == 409
    assert "completed" in again.json()["detail"]
    done = execution(api, ids["execution_id"])
    assert (done["status"], done["result"], done["error"]) == ("COMPLETED", 42, None)
    assert command_of(api, ids["execution_id"])["result"] == 42


def test_stale_completion_from_an_old_attempt_is_refused(
    server: Server, api: httpx.Client, pg_env: dict[str, str]
) -> None:
    ids = submit(api)
    cid, eid = ids["command_id"], ids["execution_id"]
    first = api.post(f"/api/commands/{cid}/claim", json={"worker_id": "old", "lease_seconds": 0.5})
    assert first.json()["attempt"] == 1
    old = first.json()["lease"]
    # The reaper (every 0.2 s here) re-queues the expired lease; a new worker claims attempt 2.
    wait_for(lambda: command_of(api, eid)["status"] == "pending", what="lease re-queued")
    second = api.post(f"/api/commands/{cid}/claim", json={"worker_id": "new", "lease_seconds": 30})
    assert second.status_code == 200
    assert second.json()["attempt"] == 2
    new = second.json()["lease"]
    assert new != old  # every attempt gets its own secret

    stale = api.post(
        f"/api/commands/{cid}/events",
        json={
            "worker_id": "old",
            "attempt": 1,
            "lease": old,
            "type": "completed",
            "payload": {"result": "stale"},
        },
    )
    assert stale.status_code == 409
    assert "lost" in stale.json()["detail"]
    beat = api.post(f"/api/commands/{cid}/heartbeat", json={"worker_id": "old", "attempt": 1, "lease": old})
    assert beat.status_code == 409
    # Right attempt, wrong worker: still refused.
    impostor = api.post(
        f"/api/commands/{cid}/events",
        json={
            "worker_id": "old",
            "attempt": 2,
            "lease": new,
            "type": "completed",
            "payload": {"result": "stale"},
        },
    )
    assert impostor.status_code == 409
    # Right worker and attempt, forged secret (anyone who can guess a worker id): refused too.
    for forged in (old, "forged", new[:-1]):
        body = {"worker_id": "new", "attempt": 2, "lease": forged}
        forgery = api.post(f"/api/commands/{cid}/events", json={**body, "type": "completed", "payload": {}})
        assert forgery.status_code == 409
        assert "wrong lease secret for attempt 2" in forgery.json()["detail"]
        assert api.post(f"/api/commands/{cid}/heartbeat", json=body).status_code == 409
        assert api.post(f"/api/commands/{cid}/release", json=body).status_code == 409
    assert command_of(api, eid)["status"] == "claimed"

    ok = api.post(
        f"/api/commands/{cid}/events",
        json={
            "worker_id": "new",
            "attempt": 2,
            "lease": new,
            "type": "completed",
            "payload": {"result": "fresh"},
        },
    )
    assert ok.json() == {"stored": True}
    late = api.post(
        f"/api/commands/{cid}/events",
        json={
            "worker_id": "old",
            "attempt": 1,
            "lease": old,
            "type": "completed",
            "payload": {"result": "stale"},
        },
    )
    assert late.status_code == 409

    completed = [e for e in execution(api, eid)["events"] if e["type"] == "completed"]
    assert [(e["worker_id"], e["attempt"], e["payload"]) for e in completed] == [
        ("new", 2, {"result": "fresh"})
    ]
    assert command_of(api, eid)["result"] == "fresh"


def test_heartbeat_extends_the_lease_past_its_first_expiry(api: httpx.Client) -> None:
    ids = submit(api)
    cid, eid = ids["command_id"], ids["execution_id"]
    lease = api.post(f"/api/commands/{cid}/claim", json={"worker_id": "w", "lease_seconds": 1}).json()
    # A witness claimed after it with the same lease and no heartbeat: once the reaper has taken
    # the witness back, it has swept past the first lease's end too.
    witness = submit(api)
    seen = api.post(
        f"/api/commands/{witness['command_id']}/claim", json={"worker_id": "w", "lease_seconds": 1}
    )
    assert seen.json()["lease_until"] >= lease["lease_until"]
    beat = api.post(
        f"/api/commands/{cid}/heartbeat",
        json={"worker_id": "w", "attempt": 1, "lease": lease["lease"], "lease_seconds": 30},
    )
    assert beat.status_code == 200
    assert beat.json()["lease_until"] > lease["lease_until"]
    wait_for(
        lambda: command_of(api, witness["execution_id"])["status"] == "pending", what="witness lease expired"
    )
    command = command_of(api, eid)
    assert (command["status"], command["worker_id"], command["attempt"]) == ("claimed", "w", 1)


def test_duplicate_event_is_stored_once(server: Server, api: httpx.Client) -> None:
    ids = submit(api)
    cid, eid = ids["command_id"], ids["execution_id"]
    lease = api.post(f"/api/commands/{cid}/claim", json={"worker_id": "w", "lease_seconds": 30}).json()[
        "lease"
    ]
    progress = {
        "worker_id": "w",
        "attempt": 1,
        "lease": lease,
        "type": "progress",
        "payload": {"pct": 50},
        "seq": 1,
    }
    assert api.post(f"/api/commands/{cid}/events", json=progress).json() == {"stored": True}
    assert api.post(f"/api/commands/{cid}/events", json=progress).json() == {"stored": False}
    # The same event sent by ten connections at once is still one row.
    started = {"worker_id": "w", "attempt": 1, "lease": lease, "type": "started", "payload": {}}
    responses = asyncio.run(_race(server.url, f"/api/commands/{cid}/events", [started] * 10))
    assert sorted(r.json()["stored"] for r in responses) == [False] * 9 + [True]
    # A completion retried after its answer was lost: stored once, not a 409.
    done = {"worker_id": "w", "attempt": 1, "lease": lease, "type": "completed", "payload": {"result": "ok"}}
    assert api.post(f"/api/commands/{cid}/events", json=done).json() == {"stored": True}
    retry = api.post(f"/api/commands/{cid}/events", json=done)
    assert retry.status_code == 200
    assert retry.json() == {"stored": False}
    types = [e["type"] for e in execution(api, eid)["events"]]
    assert types == ["created", "claimed", "progress", "started", "completed"]


def test_failed_event_is_terminal_and_not_retried(api: httpx.Client) -> None:
    ids = submit(api, max_attempts=3)
    cid, eid = ids["command_id"], ids["execution_id"]
    lease = api.post(f"/api/commands/{cid}/claim", json={"worker_id": "w"}).json()["lease"]
    failed = api.post(
        f"/api/commands/{cid}/events",
        json={
            "worker_id": "w",
            "attempt": 1,
            "lease": lease,
            "type": "failed",
            "payload": {"error": "exit code 3"},
        },
    )
    assert failed.json() == {"stored": True}
    command = command_of(api, eid)
    assert (command["status"], command["error"]) == ("failed", "exit code 3")
    assert api.post(f"/api/commands/{cid}/claim", json={"worker_id": "w2"}).status_code == 409


def test_release_requeues_without_using_an_attempt(server: Server, api: httpx.Client, nats: Any) -> None:
    ids = submit(api, max_attempts=1)
    cid, eid = ids["command_id"], ids["execution_id"]
    wait_for(lambda: command_of(api, eid)["published_at"], what="first notice")
    lease = api.post(f"/api/commands/{cid}/claim", json={"worker_id": "w", "lease_seconds": 30}).json()[
        "lease"
    ]
    other = {"worker_id": "other", "attempt": 1, "lease": lease}
    assert api.post(f"/api/commands/{cid}/release", json=other).status_code == 409
    released = api.post(f"/api/commands/{cid}/release", json={"worker_id": "w", "attempt": 1, "lease": lease})
    assert released.status_code == 200
    command = command_of(api, eid)
    assert (command["status"], command["lost_leases"], command["worker_id"]) == ("pending", 0, None)
    # Re-published at once, with its own message id (the next attempt is 2).
    notices = wait_for(
        lambda: len(stream_notices(nats.url)) == 2 and stream_notices(nats.url), what="2 notices"
    )
    assert [msg_id for msg_id, _ in notices] == [f"{cid}:1", f"{cid}:2"]
    assert notices[1][1] == {"command_id": cid, "execution_id": eid, "attempt": 2}
    # A release does not count: with max_attempts 1 the command can still be claimed and run.
    again = api.post(f"/api/commands/{cid}/claim", json={"worker_id": "w2", "lease_seconds": 30})
    assert again.status_code == 200
    assert again.json()["attempt"] == 2


def test_workers_registry(api: httpx.Client) -> None:
    body = {"worker_id": "host:worker_00:1", "name": "worker_00", "host": "host", "pid": 1, "concurrency": 4}
    assert api.post("/api/workers", json=body).status_code == 200
    assert api.post("/api/workers", json=body).status_code == 200  # idempotent
    beat = api.post("/api/workers/host:worker_00:1/heartbeat", json={"running": ["c1"]})
    assert beat.status_code == 200
    assert api.post("/api/workers/nobody/heartbeat", json={"running": []}).status_code == 404
    items = api.get("/api/workers").json()["items"]
    assert [(w["worker_id"], w["status"], w["running"]) for w in items] == [
        ("host:worker_00:1", "online", ["c1"])
    ]
    metrics = api.get("/metrics").text
    assert "noetl_workers_online 1.0" in metrics
    assert api.delete("/api/workers/host:worker_00:1").json()["status"] == "offline"
    assert api.delete("/api/workers/nobody").status_code == 404
    assert "noetl_workers_online 0.0" in api.get("/metrics").text


def test_list_executions_filter_and_pages(api: httpx.Client) -> None:
    made = [submit(api)["execution_id"] for _ in range(5)]
    cid = command_of(api, made[0])["command_id"]
    lease = api.post(f"/api/commands/{cid}/claim", json={"worker_id": "w"}).json()["lease"]
    page = api.get("/api/executions", params={"limit": 2, "offset": 1}).json()
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)
    assert [i["execution_id"] for i in page["items"]] == list(reversed(made))[1:3]
    api.post(
        f"/api/commands/{cid}/events",
        json={
            "worker_id": "w",
            "attempt": 1,
            "lease": lease,
            "type": "failed",
            "payload": {"error": "exit 1"},
        },
    )
    failed = api.get("/api/executions", params={"status": "FAILED"}).json()
    assert [i["execution_id"] for i in failed["items"]] == [made[0]]
    assert api.get("/api/executions", params={"status": "RUNNING"}).json()["total"] == 4
    # The command's words are not the execution's.
    assert api.get("/api/executions", params={"status": "claimed"}).status_code == 422


def test_metrics_report_commands_and_latency(api: httpx.Client) -> None:
    ids = submit(api)
    lease = api.post(f"/api/commands/{ids['command_id']}/claim", json={"worker_id": "w"}).json()["lease"]
    api.post(
        f"/api/commands/{ids['command_id']}/events",
        json={"worker_id": "w", "attempt": 1, "lease": lease, "type": "completed", "payload": {"result": 1}},
    )
    submit(api)
    text = api.get("/metrics").text
    assert 'noetl_commands{status="completed"} 1.0' in text
    assert 'noetl_commands{status="pending"} 1.0' in text
    assert "noetl_queue_depth 1.0" in text
    assert "noetl_claim_latency_seconds_count 1.0" in text
    assert 'noetl_completion_latency_seconds_count{status="completed"} 1.0' in text
