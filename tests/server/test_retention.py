"""Retention on a real PostgreSQL: `noetl db prune --older-than` and the server's background task
delete only what finished (or went silent) before the cut-off, with everything that hangs off it,
in batches; the counts printed are the rows that went."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from noetl.server.db import Database
from noetl.server.migrations import migrate
from noetl.server.retention import run_retention
from noetl.settings import load_settings
from tests.server.test_bounds import dsn
from tests.worker.harness import ROOT, clean_env

pytestmark = pytest.mark.integration

OLD = 1203  # old finished executions: more than two batches of 500


async def _fill(conn: asyncpg.Connection) -> dict[str, list[uuid.UUID]]:
    """Executions of each kind, each with one command, one step run and two events."""
    await migrate(conn)
    kinds = {
        # finished 10 days ago: to go
        "old": ("COMPLETED", "10 days", OLD),
        "old_failed": ("FAILED", "9 days", 3),
        "old_cancelled": ("CANCELLED", "8 days", 2),
        # created long ago but finished recently, still running, or young: to stay
        "finished_lately": ("COMPLETED", "1 day", 2),
        "running": ("RUNNING", None, 4),
        "young": ("COMPLETED", "1 hour", 5),
    }
    made: dict[str, list[uuid.UUID]] = {}
    for name, (status, finished_ago, count) in kinds.items():
        ids = [uuid.uuid4() for _ in range(count)]
        created = "now() - interval '1 hour'" if name == "young" else "now() - interval '30 days'"
        finished = f"now() - interval '{finished_ago}'" if finished_ago else "NULL"
        await conn.execute(
            f"""
            WITH e AS (
                INSERT INTO noetl.executions (execution_id, status, created_at, updated_at, finished_at)
                SELECT id, $2, {created}, coalesce({finished}, now()), {finished}
                FROM unnest($1::uuid[]) AS id
                RETURNING execution_id
            ), s AS (
                INSERT INTO noetl.step_runs (execution_id, step, status)
                SELECT execution_id, 'start', 'done' FROM e
            ), c AS (
                INSERT INTO noetl.commands (command_id, execution_id, tool, timeout, max_attempts, status)
                SELECT gen_random_uuid(), execution_id, '{{"kind": "noop"}}', 10, 1, 'completed' FROM e
                RETURNING command_id, execution_id
            )
            INSERT INTO noetl.events (execution_id, command_id, type, seq)
            SELECT execution_id, command_id, 'created', n FROM c, generate_series(1, 2) AS n
            """,
            ids,
            status,
        )
        made[name] = ids
    # A child that finished long ago under a parent that still runs: kept for its parent.
    await conn.execute(
        "UPDATE noetl.executions SET parent_execution_id = $1 WHERE execution_id = $2",
        made["running"][0],
        made["old_failed"][0],
    )
    await conn.execute(
        """
        INSERT INTO noetl.workers (worker_id, name, host, pid, concurrency, status, heartbeat_at) VALUES
            ('gone', 'gone', 'h', 1, 1, 'offline', now() - interval '8 days'),
            ('died', 'died', 'h', 2, 1, 'online', now() - interval '20 days'),
            ('resting', 'resting', 'h', 3, 1, 'offline', now() - interval '2 days'),
            ('alive', 'alive', 'h', 4, 1, 'online', now())
        """
    )
    return made


async def _counts(conn: asyncpg.Connection) -> dict[str, Any]:
    tables = ("executions", "commands", "step_runs", "events")
    counts: dict[str, Any] = {t: await conn.fetchval(f"SELECT count(*) FROM noetl.{t}") for t in tables}
    counts["ids"] = {r[0] for r in await conn.fetch("SELECT execution_id FROM noetl.executions")}
    counts["workers"] = {r[0] for r in await conn.fetch("SELECT worker_id FROM noetl.workers")}
    return counts


@pytest.fixture
def filled(pg_env: dict[str, str]) -> Iterator[dict[str, list[uuid.UUID]]]:
    async def fill() -> dict[str, list[uuid.UUID]]:
        conn = await asyncpg.connect(dsn(pg_env))
        try:
            return await _fill(conn)
        finally:
            await conn.close()

    yield asyncio.run(fill())


def counts(env: dict[str, str]) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        conn = await asyncpg.connect(dsn(env))
        try:
            return await _counts(conn)
        finally:
            await conn.close()

    return asyncio.run(read())


def prune(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "noetl", "db", "prune", *args],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def kept(made: dict[str, list[uuid.UUID]]) -> set[uuid.UUID]:
    stay = ("finished_lately", "running", "young")
    return {i for name in stay for i in made[name]} | {made["old_failed"][0]}


def test_db_prune_deletes_only_what_finished_before_the_cut_off(
    pg_env: dict[str, str], filled: dict[str, list[uuid.UUID]]
) -> None:
    before = counts(pg_env)
    done = prune(pg_env, "--older-than", "7d")
    assert done.returncode == 0, done.stderr
    gone = OLD + 2 + 2  # old, old_failed but the child of a running parent, old_cancelled
    assert done.stdout == (
        f"deleted {gone} execution(s) with {gone} command(s), {gone} step run(s) and {2 * gone} event(s); "
        "2 worker(s)\n"
    )
    after = counts(pg_env)
    assert after["ids"] == kept(filled)
    left = len(kept(filled))
    assert (after["executions"], after["commands"], after["step_runs"], after["events"]) == (
        left,
        left,
        left,
        2 * left,
    )
    assert before["executions"] - after["executions"] == gone
    assert after["workers"] == {"resting", "alive"}
    # Again: nothing more is old enough.
    assert prune(pg_env, "--older-than", "7d").stdout.startswith("deleted 0 execution(s)")
    # A shorter age takes the ones that finished a day ago and the resting worker.
    assert prune(pg_env, "--older-than", "12h").stdout.startswith("deleted 2 execution(s)")
    assert counts(pg_env)["workers"] == {"alive"}


def test_db_prune_mistakes_are_one_line_and_exit_2(pg_env: dict[str, str]) -> None:
    for age in ("7", "7 days", "-1d", "0d", "d"):
        done = prune(pg_env, f"--older-than={age}")
        assert done.returncode == 2, (age, done.stderr)
        assert done.stderr == (
            f"noetl: --older-than {age!r}: expected a number and a unit s, m, h, d or w, like 7d\n"
        )
    zero = prune({**pg_env, "NOETL_RETENTION_DAYS": "0"})
    assert (zero.returncode, zero.stderr) == (
        2,
        "noetl: NOETL_RETENTION_DAYS is 0 (keep everything): give --older-than AGE to prune\n",
    )
    empty = prune(pg_env, "--older-than", "1d")  # a database without noetl's schema
    assert (empty.returncode, empty.stderr) == (
        2,
        f"noetl: no noetl schema at 127.0.0.1:{pg_env['POSTGRES_PORT']}/{pg_env['POSTGRES_DB']}: "
        "run `noetl db init` first\n",
    )


def test_the_server_prunes_by_itself_with_retention_days(
    pg_env: dict[str, str], filled: dict[str, list[uuid.UUID]]
) -> None:
    settings = load_settings(clean_env(**pg_env, NOETL_RETENTION_DAYS="7"))

    async def scenario() -> None:
        db = Database(settings)
        await db.open()
        task = asyncio.create_task(run_retention(db, settings.retention_days, interval=3600, first_delay=0))
        try:
            async with asyncio.timeout(30):
                while True:
                    # One pass deletes executions, then workers: wait for both, or the task
                    # is cancelled between the two.
                    async with db.connection() as conn:
                        left = await conn.fetchval("SELECT count(*) FROM noetl.executions")
                        workers = await conn.fetchval("SELECT count(*) FROM noetl.workers")
                    if (left, workers) == (len(kept(filled)), 2):
                        break
                    await asyncio.sleep(0.1)
        finally:
            task.cancel()
            await db.close(2)

    asyncio.run(scenario())
    after = counts(pg_env)
    assert after["ids"] == kept(filled)
    assert after["events"] == 2 * len(kept(filled))
    assert after["workers"] == {"resting", "alive"}
