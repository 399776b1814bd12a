"""What the network loses between a worker, the server and NATS, with real processes.

- A claim whose answer is lost after the server applied it: the worker's retry of the same call
  gets the same lease back, so the command runs once, as attempt 1 (not 409, then a lease that
  has to expire and a second attempt).
- A notice NATS acknowledged and then lost (the stream purged): the command, still pending, is
  published again under a new message id and completes.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import nats
import pytest

from tests.server.conftest import pg_fetch, stream_notices
from tests.services import wait_until
from tests.worker.harness import Cluster, assert_completed_once, event_types
from tests.worker.proxy import LossyProxy

pytestmark = pytest.mark.integration

STREAM = "NOETL_COMMANDS"


def test_a_claim_whose_answer_was_lost_runs_once_as_attempt_1(
    cluster: Cluster, tmp_path: Path, pg_env: dict[str, str]
) -> None:
    cluster.start_server()
    ran = tmp_path / "ran"
    with LossyProxy(cluster.url, suffix="/api/commands/claims", lose=1) as proxy:
        cluster.start_worker("worker_00", NOETL_SERVER_URL=proxy.url)
        cluster.wait_worker_ready("worker_00")
        eid, cid = cluster.submit({"kind": "shell", "command": f"echo ran >> {ran}"})
        view = cluster.wait_finished([eid], timeout=30)[eid]
        claims = [status for method, path, status in proxy.forwarded if path == "/api/commands/claims"]
    assert proxy.lost == 1
    assert claims == [200, 200]  # the server answered both: the lost one and its retry
    assert_completed_once(view)
    assert event_types(view).count("claimed") == 1
    (row,) = pg_fetch(
        pg_env, "SELECT attempt, lost_leases FROM noetl.commands WHERE command_id = $1", uuid.UUID(cid)
    )
    assert (row["attempt"], row["lost_leases"]) == (1, 0)
    assert ran.read_text() == "ran\n"  # the tool ran once


def _purge(url: str) -> None:
    async def purge() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().purge_stream(STREAM)
        finally:
            await nc.close()

    asyncio.run(purge())


def test_a_notice_nats_lost_is_published_again_and_the_command_completes(
    cluster: Cluster, pg_env: dict[str, str]
) -> None:
    # Sweeps every 0.1 s: a published command still pending after 30 sweeps (3 s) is re-published.
    cluster.env["NOETL_REAPER_INTERVAL"] = "0.1"
    cluster.start_server()
    nats_url = cluster.env["NATS_URL"]
    eid, cid = cluster.submit({"kind": "shell", "command": "echo hi"})
    wait_until(lambda: [m for m, _ in stream_notices(nats_url)] == [f"{cid}:1"], 15, "first notice")

    def published() -> bool:
        query = "SELECT published_at FROM noetl.commands WHERE command_id = $1"
        return pg_fetch(pg_env, query, uuid.UUID(cid))[0]["published_at"] is not None

    wait_until(published, 15, "the ack recorded")  # else the outbox's own sweep would send it again
    _purge(nats_url)  # the notice is gone; the command is pending and marked published
    assert stream_notices(nats_url) == []
    cluster.start_worker("worker_00")
    cluster.wait_worker_ready("worker_00")
    view = cluster.wait_finished([eid], timeout=30)[eid]
    assert_completed_once(view)
    (row,) = pg_fetch(
        pg_env, "SELECT attempt, republished FROM noetl.commands WHERE command_id = $1", uuid.UUID(cid)
    )
    # Once at least (again every 3 s while the worker was still starting), and it ran as attempt 1.
    assert row["attempt"] == 1 and row["republished"] >= 1
    assert "publishing again" in cluster.output("server")
