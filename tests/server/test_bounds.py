"""Bounded under abuse, with the real server, worker, PostgreSQL and NATS: a flood of slow list
requests neither stops claims nor queues without end (503 with Retry-After), and the pool's
acquire timeout holds for any caller."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from noetl.server.db import Database, DatabaseBusy, read_slots
from noetl.settings import load_settings
from tests.auth import RouteAuth
from tests.services import Nats
from tests.worker.harness import Cluster, assert_completed_once, clean_env

POOL = 6
FLOOD = 200

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(tmp_path: Path, pg_env: dict[str, str], nats: Nats) -> Iterator[Cluster]:
    c = Cluster(
        tmp=tmp_path,
        env=clean_env(
            **pg_env,
            NATS_URL=nats.url,
            NOETL_REAPER_INTERVAL="0.2",
            NOETL_LOG_LEVEL="info",
            NOETL_DB_POOL_SIZE=str(POOL),
            NOETL_DB_ACQUIRE_TIMEOUT="1",
        ),
    )
    try:
        yield c
    finally:
        c.stop_all()


def dsn(env: dict[str, str]) -> str:
    return f"postgresql://{env['POSTGRES_USER']}@{env['POSTGRES_HOST']}:{env['POSTGRES_PORT']}/{env['POSTGRES_DB']}"


async def _waiting_on_workers(conn: asyncpg.Connection) -> int:
    """Workers lists blocked behind the test's lock on the workers table."""
    return int(
        await conn.fetchval(
            """
            SELECT count(*) FROM pg_stat_activity
            WHERE wait_event_type = 'Lock' AND query LIKE '%SELECT worker_id%FROM noetl.workers%'
            """
        )
    )


def test_a_flood_of_slow_list_requests_does_not_stop_claims(cluster: Cluster) -> None:
    cluster.start_server()
    cluster.start_worker("worker_01")
    cluster.wait_worker_ready("worker_01")

    async def scenario() -> tuple[list[httpx.Response], str]:
        # Slow lists, as a huge scan or a slow disk would make them: the workers table is locked, so
        # each workers list holds its database connection until the lock goes (claims, submissions
        # and events never read that table; the worker's heartbeats wait too).
        locker = await asyncpg.connect(dsn(cluster.env))
        # Another connection watches: inside the locker's transaction pg_stat_activity is a snapshot.
        watcher = await asyncpg.connect(dsn(cluster.env))
        lock = locker.transaction()
        await lock.start()
        await locker.execute("LOCK TABLE noetl.workers IN ACCESS EXCLUSIVE MODE")
        limits = httpx.Limits(max_connections=FLOOD + 10)
        auth = RouteAuth.of(cluster.full_env())
        async with httpx.AsyncClient(base_url=cluster.url, timeout=30, limits=limits, auth=auth) as client:
            flood = [asyncio.create_task(client.get("/api/workers")) for _ in range(FLOOD)]
            try:
                async with asyncio.timeout(10):
                    while await _waiting_on_workers(watcher) < read_slots(POOL):
                        await asyncio.sleep(0.02)
                # Every connection lists may hold is stuck; work still gets the rest of the pool:
                # the command completes while the lock is held (a claim that queued behind the
                # lists would wait for the rollback below, after this deadline: no timing asserted).
                answer = await client.post(
                    "/api/executions", json={"tool": {"kind": "shell", "command": "echo through"}}
                )
                assert answer.status_code == 201, answer.text
                execution_id = answer.json()["execution_id"]
                async with asyncio.timeout(30):
                    while (await client.get(f"/api/executions/{execution_id}")).json()[
                        "status"
                    ] != "COMPLETED":
                        await asyncio.sleep(0.05)
                # The lists beyond the read share are told to come back instead of queueing.
                async with asyncio.timeout(10):
                    while sum(task.done() for task in flood) < FLOOD - read_slots(POOL):
                        await asyncio.sleep(0.02)
            finally:
                await lock.rollback()
                await locker.close()
                await watcher.close()
            return list(await asyncio.gather(*flood)), execution_id

    answers, execution_id = asyncio.run(scenario())
    busy = [a for a in answers if a.status_code == 503]
    listed = [a for a in answers if a.status_code == 200]
    assert (len(listed), len(busy)) == (read_slots(POOL), FLOOD - read_slots(POOL))
    for answer in busy:
        assert answer.headers["retry-after"] == "1"
        detail = answer.json()["detail"]
        assert detail == "the server is busy (no database connection free); retry in 1s"
    assert all(len(a.json()["items"]) == 1 for a in listed)
    assert_completed_once(cluster.execution(execution_id))


def test_the_pool_acquire_timeout_ends_a_wait_for_a_connection(pg_env: dict[str, str]) -> None:
    settings = load_settings(
        {**clean_env(**pg_env), "NOETL_DB_POOL_SIZE": "1", "NOETL_DB_ACQUIRE_TIMEOUT": "0.3"}
    )

    async def scenario() -> tuple[str, str]:
        db = Database(settings)
        await db.open()
        try:
            async with db.connection() as held:
                await held.fetchval("SELECT 1")
                with pytest.raises(DatabaseBusy) as work:
                    async with db.connection():
                        pass
                with pytest.raises(DatabaseBusy) as read:
                    async with db.connection("read"):
                        pass
            # Free again: the next caller gets the connection.
            async with db.connection("read") as conn:
                assert await conn.fetchval("SELECT 2") == 2
            return str(work.value), str(read.value)
        finally:
            await db.close(2)

    work, read = asyncio.run(scenario())
    assert work == "all 1 database connections stayed busy for 0.3s"
    assert read == "all 1 database connections stayed busy for 0.3s"


def test_reads_hold_at_most_half_the_pool(pg_env: dict[str, str]) -> None:
    settings = load_settings(
        {**clean_env(**pg_env), "NOETL_DB_POOL_SIZE": "4", "NOETL_DB_ACQUIRE_TIMEOUT": "0.3"}
    )

    async def scenario() -> str:
        db = Database(settings)
        await db.open()
        try:
            async with db.connection("read"), db.connection("read"):
                with pytest.raises(DatabaseBusy) as third:
                    async with db.connection("read"):
                        pass
                # Work still gets both other connections.
                async with db.connection() as a, db.connection() as b:
                    assert await a.fetchval("SELECT 1") == await b.fetchval("SELECT 1") == 1
            return str(third.value)
        finally:
            await db.close(2)

    assert asyncio.run(scenario()) == "the 2 database connections for reads stayed busy for 0.3s"


def test_noetl_status_prints_no_terminal_control_sequences(cluster: Cluster) -> None:
    cluster.start_server()
    cluster.start_worker("worker_01")
    # Text meant for the terminal of whoever looks: clear the screen, retitle the window; in the
    # command itself (shown as it is) and in what it prints (shown as JSON).
    command = "printf '\\033[2Jcleared'  # \x1b[2J\x1b]0;owned\x07"
    execution_id, _ = cluster.submit({"kind": "shell", "command": command})
    view = cluster.wait_status(execution_id, "COMPLETED", 30)
    assert view["commands"][0]["result"]["stdout"] == "\x1b[2Jcleared"  # it was there
    env = {**cluster.full_env(), "NO_COLOR": "1"}
    for argv in (["status", execution_id], ["status"], ["status", execution_id, "--json"]):
        done = subprocess.run(
            [sys.executable, "-m", "noetl", *argv], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert "\x1b" not in done.stdout and "\x07" not in done.stdout, argv
    shown = subprocess.run(
        [sys.executable, "-m", "noetl", "status", execution_id], env=env, capture_output=True, text=True
    ).stdout
    # Each sequence went whole (no stray "[2J" or "owned" left behind).
    assert "  shell: printf '\\033[2Jcleared'  # \n" in shown, shown


def test_metrics_count_finished_commands_at_most_once_a_minute(pg_env: dict[str, str]) -> None:
    from noetl.server.metrics import FINISHED_REFRESH, ServerMetrics

    settings = load_settings(clean_env(**pg_env))
    now = [1000.0]

    def add(conn: asyncpg.Connection, status: str, n: int) -> Any:
        return conn.execute(
            """
            WITH e AS (
                INSERT INTO noetl.executions (execution_id, status)
                SELECT gen_random_uuid(), 'RUNNING' FROM generate_series(1, $2) RETURNING execution_id
            )
            INSERT INTO noetl.commands (command_id, execution_id, tool, timeout, max_attempts, status)
            SELECT gen_random_uuid(), execution_id, '{"kind": "noop"}', 10, 1, $1 FROM e
            """,
            status,
            n,
        )

    def value(text: bytes, status: str) -> float:
        line = f'noetl_commands{{status="{status}"}} '
        return float(next(x for x in text.decode().splitlines() if x.startswith(line)).split()[-1])

    async def scenario() -> list[tuple[float, float]]:
        db = Database(settings)
        await db.open()
        metrics = ServerMetrics(clock=lambda: now[0])
        seen = []
        try:
            for step in range(3):
                async with db.connection() as conn:
                    await add(conn, "completed", 5)
                    await add(conn, "pending", 2)
                text = await metrics.render(db)
                seen.append((value(text, "completed"), value(text, "pending")))
                now[0] += FINISHED_REFRESH / 2 if step == 0 else FINISHED_REFRESH
        finally:
            await db.close(2)
        return seen

    # Pending ones are counted at every scrape; completed ones again only a minute after the last count.
    assert asyncio.run(scenario()) == [(5, 2), (5, 4), (15, 6)]
