"""Notices in JetStream: after commit, from the outbox once NATS is back, and on re-queue."""

from __future__ import annotations

from functools import partial
from typing import Any

import httpx
import pytest

from tests.server.conftest import Server, command_of, execution, stream_notices, submit, wait_for
from tests.services import Nats

pytestmark = pytest.mark.integration


def test_new_command_is_published_once_with_its_message_id(api: httpx.Client, nats: Nats) -> None:
    ids = submit(api)
    notices = wait_for(lambda: stream_notices(nats.url), what="notice")
    cid = ids["command_id"]
    assert notices == [(f"{cid}:1", {"command_id": cid, "execution_id": ids["execution_id"], "attempt": 1})]
    assert wait_for(lambda: command_of(api, ids["execution_id"])["published_at"], what="published_at")


def test_commands_submitted_while_nats_is_down_are_published_when_it_returns(
    server: Server, api: httpx.Client, nats: Nats
) -> None:
    nats.stop()
    wait_for(lambda: api.get("/api/ready").status_code == 503, what="readiness 503 without NATS")
    assert api.get("/api/ready").json() == {"status": "not ready", "postgres": True, "nats": False}
    made = [submit(api) for _ in range(3)]  # accepted while NATS is down
    for ids in made:
        assert command_of(api, ids["execution_id"])["published_at"] is None
    nats.start()
    server.wait_ready()
    notices = wait_for(
        lambda: len(stream_notices(nats.url)) == 3 and stream_notices(nats.url), what="3 notices"
    )
    assert sorted(msg_id for msg_id, _ in notices) == sorted(f"{ids['command_id']}:1" for ids in made)
    for execution_id in (ids["execution_id"] for ids in made):
        wait_for(partial(lambda e: command_of(api, e)["published_at"], execution_id), what="published_at")


def test_expired_lease_is_requeued_and_republished(api: httpx.Client, nats: Nats) -> None:
    ids = submit(api, max_attempts=3)
    cid, eid = ids["command_id"], ids["execution_id"]
    wait_for(lambda: stream_notices(nats.url), what="first notice")
    claim = api.post(f"/api/commands/{cid}/claim", json={"worker_id": "dies", "lease_seconds": 0.5})
    assert claim.json()["attempt"] == 1
    command = wait_for(
        lambda: (c := command_of(api, eid))["status"] == "pending" and c, what="lease re-queued"
    )
    assert (command["lost_leases"], command["attempt"], command["worker_id"]) == (1, 1, None)
    notices = wait_for(
        lambda: len(stream_notices(nats.url)) == 2 and stream_notices(nats.url), what="re-publish"
    )
    assert notices[1] == (f"{cid}:2", {"command_id": cid, "execution_id": eid, "attempt": 2})
    expired = [e for e in execution(api, eid)["events"] if e["type"] == "lease_expired"]
    assert [(e["worker_id"], e["attempt"]) for e in expired] == [("dies", 1)]
    # The notice is right: the next claim is attempt 2.
    assert api.post(f"/api/commands/{cid}/claim", json={"worker_id": "w2"}).json()["attempt"] == 2


def test_command_is_dead_after_max_attempts_with_a_failed_event(api: httpx.Client, nats: Nats) -> None:
    ids = submit(api, max_attempts=2)
    cid, eid = ids["command_id"], ids["execution_id"]
    for attempt in (1, 2):
        wait_for(
            lambda: command_of(api, eid)["status"] == "pending", what=f"pending before attempt {attempt}"
        )
        claim = api.post(
            f"/api/commands/{cid}/claim", json={"worker_id": f"w{attempt}", "lease_seconds": 0.3}
        )
        assert claim.json()["attempt"] == attempt
    done: dict[str, Any] = wait_for(
        lambda: (e := execution(api, eid))["status"] == "FAILED" and e, what="dead"
    )
    command = done["commands"][0]
    assert (command["status"], command["lost_leases"]) == ("dead", 2)
    assert "lease expired 2 times" in command["error"]
    failed = [e for e in done["events"] if e["type"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["payload"]["dead"] is True
    assert failed[0]["payload"]["error"] == command["error"]
    assert api.post(f"/api/commands/{cid}/claim", json={"worker_id": "w3"}).status_code == 409
    # Two notices (attempts 1 and 2); none after it died.
    assert [m for m, _ in stream_notices(nats.url)] == [f"{cid}:1", f"{cid}:2"]
