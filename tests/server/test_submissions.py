"""Submissions are group-committed: concurrent ones share a statement, each keeps its own ids and
notice; an idle one is inserted alone, at once; one the database refuses fails alone.

The statements are counted twice, independently: by the server's ``noetl_submit_batch_size``
histogram and by PostgreSQL itself (rows written by one statement share its transaction id, xmin).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import asyncpg
import httpx
import pytest

from noetl.server.db import Database
from noetl.server.metrics import ServerMetrics
from noetl.server.outbox import Outbox
from noetl.server.publisher import Publisher
from noetl.server.queries.submissions import Submission
from noetl.server.submitter import Submitter
from noetl.settings import load_settings
from tests.auth import RouteAuth
from tests.server.conftest import Server, clean_env, command_of, pg_fetch, stream_notices, submit, wait_for
from tests.services import Nats

pytestmark = pytest.mark.integration

TOOL = {"kind": "shell", "command": ["true"]}
BURST = 40


def batches(api: httpx.Client) -> tuple[int, int]:
    """(statements, submissions) so far, from the server's noetl_submit_batch_size histogram."""
    text = api.get("/metrics").text
    count = re.search(r"^noetl_submit_batch_size_count (\S+)$", text, re.M)
    total = re.search(r"^noetl_submit_batch_size_sum (\S+)$", text, re.M)
    assert count and total, text
    return int(float(count[1])), int(float(total[1]))


def transactions(pg_env: dict[str, str]) -> int:
    """How many transactions inserted the submissions (one per statement of the submitter), read
    from their `created` events: never updated, they keep the inserting transaction's xmin (a
    command's row takes a new one when the outbox marks it published)."""
    query = "SELECT count(DISTINCT xmin::text) AS n FROM noetl.events WHERE type = 'created'"
    return int(pg_fetch(pg_env, query)[0]["n"])


def submit_concurrently(server: Server, n: int) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30, auth=RouteAuth()) as client:

            async def one(i: int) -> dict[str, Any]:
                body = {"tool": {"kind": "shell", "command": ["echo", str(i)]}, "timeout": 10 + i}
                response = await client.post("/api/executions", json=body)
                assert response.status_code == 201, response.text
                answer: dict[str, Any] = response.json()
                return {**answer, "i": i}

            return list(await asyncio.gather(*(one(i) for i in range(n))))

    return asyncio.run(run())


def test_concurrent_submissions_share_statements_and_each_gets_its_own_command(
    server: Server, api: httpx.Client, nats: Nats, pg_env: dict[str, str]
) -> None:
    made = submit_concurrently(server, BURST)

    statements, submitted = batches(api)
    assert submitted == BURST
    assert 1 <= statements < BURST, statements  # some of them went in together
    assert transactions(pg_env) == statements
    # Each answer names its own execution and command, holding what that request sent.
    assert len({m["execution_id"] for m in made}) == len({m["command_id"] for m in made}) == BURST
    for m in made:
        command = command_of(api, m["execution_id"])
        assert command["command_id"] == m["command_id"]
        assert command["tool"] == {"kind": "shell", "command": ["echo", str(m["i"])]}
        assert command["timeout"] == 10 + m["i"]
    created = pg_fetch(pg_env, "SELECT command_id::text, payload FROM noetl.events WHERE type = 'created'")
    assert sorted(e["command_id"] for e in created) == sorted(m["command_id"] for m in made)
    # And each its own notice, once.
    notices = wait_for(
        lambda: len(stream_notices(nats.url)) >= BURST and stream_notices(nats.url), what="notices"
    )
    assert sorted(msg_id for msg_id, _ in notices) == sorted(f"{m['command_id']}:1" for m in made)
    assert all(body["attempt"] == 1 for _, body in notices)
    unpublished = "SELECT count(*) AS n FROM noetl.commands WHERE published_at IS NULL"
    wait_for(lambda: pg_fetch(pg_env, unpublished)[0]["n"] == 0, what="every command marked published")


def test_an_idle_submission_is_inserted_alone_at_once(
    api: httpx.Client, nats: Nats, pg_env: dict[str, str]
) -> None:
    for expected in (1, 2, 3):
        ids = submit(api, TOOL)
        # Answered: committed, in a statement of its own (nothing waited for company).
        assert batches(api) == (expected, expected)
        assert command_of(api, ids["execution_id"])["status"] == "pending"
    assert transactions(pg_env) == 3
    wait_for(lambda: len(stream_notices(nats.url)) == 3, what="3 notices")


def test_a_concurrent_burst_while_nats_is_down_is_published_when_it_returns(
    server: Server, api: httpx.Client, nats: Nats, pg_env: dict[str, str]
) -> None:
    nats.stop()
    wait_for(lambda: api.get("/api/ready").status_code == 503, what="readiness 503 without NATS")
    made = submit_concurrently(server, BURST)  # accepted while NATS is down
    unpublished = "SELECT command_id::text FROM noetl.commands WHERE published_at IS NULL"
    assert sorted(r["command_id"] for r in pg_fetch(pg_env, unpublished)) == sorted(
        m["command_id"] for m in made
    )
    nats.start()
    server.wait_ready()
    notices = wait_for(
        lambda: len(stream_notices(nats.url)) >= BURST and stream_notices(nats.url), what="notices"
    )
    assert sorted(msg_id for msg_id, _ in notices) == sorted(f"{m['command_id']}:1" for m in made)
    wait_for(lambda: not pg_fetch(pg_env, unpublished), what="every command marked published")


# --- the submitter in process, on the real database ---------------------------------------------


def _submitter_run(pg_env: dict[str, str], scenario: Any) -> Any:
    settings = load_settings(clean_env(**pg_env))

    async def run() -> Any:
        db = Database(settings)
        await db.open()
        metrics = ServerMetrics()
        # Never connected: notices only queue in the outbox (the tests read them from there).
        outbox = Outbox(db, Publisher(settings), metrics, interval=60)
        try:
            return await scenario(Submitter(db, outbox, metrics), outbox, db)
        finally:
            await db.close(2)

    return asyncio.run(run())


def _good(i: int) -> Submission:
    return Submission({"kind": "shell", "command": ["echo", str(i)]}, 5.0 + i, 3)


def test_submissions_queued_during_an_insert_go_in_one_statement(pg_env: dict[str, str]) -> None:
    async def scenario(submitter: Submitter, outbox: Outbox, db: Database) -> Any:
        # All 20 are queued before the insert task first runs: one batch.
        notices = await asyncio.gather(*(submitter.submit(_good(i)) for i in range(20)))
        async with db.connection() as conn:
            rows = await conn.fetch(
                "SELECT command_id, execution_id, tool, xmin::text AS tx FROM noetl.commands"
            )
        return notices, rows, list(outbox._queue)

    notices, rows, queued = _submitter_run(pg_env, scenario)
    assert len({r["tx"] for r in rows}) == 1
    by_id = {r["command_id"]: r for r in rows}
    for i, notice in enumerate(notices):  # each caller got the notice of its own submission
        assert by_id[notice.command_id]["execution_id"] == notice.execution_id
        assert by_id[notice.command_id]["tool"] == _good(i).tool
        assert notice.attempt == 1
    assert queued == notices  # handed to the outbox together, once


def test_a_submission_the_database_refuses_fails_alone(pg_env: dict[str, str]) -> None:
    # A NUL character: validation refuses it at the API; here it reaches PostgreSQL, whose jsonb
    # cannot store it, in the middle of a batch.
    bad = Submission({"kind": "shell", "command": ["echo", "a\x00b"]}, 5.0, 3)

    async def scenario(submitter: Submitter, outbox: Outbox, db: Database) -> Any:
        outcomes = await asyncio.gather(
            *(submitter.submit(bad if i == 3 else _good(i)) for i in range(8)), return_exceptions=True
        )
        async with db.connection() as conn:
            stored = await conn.fetch("SELECT command_id, tool FROM noetl.commands")
        return outcomes, stored

    outcomes, stored = _submitter_run(pg_env, scenario)
    assert isinstance(outcomes[3], asyncpg.DataError)
    good = [o for i, o in enumerate(outcomes) if i != 3]
    assert all(not isinstance(o, BaseException) for o in good)
    assert sorted(r["command_id"] for r in stored) == sorted(o.command_id for o in good)
