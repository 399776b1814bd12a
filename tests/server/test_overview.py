"""The overview's queries on a real PostgreSQL: executions by status since a time, the latest
failures with the step that failed and its error, and the workers online with their load."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import pytest

from noetl.server.migrations import migrate
from noetl.server.queries import overview
from tests.server.test_bounds import dsn

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
T = TypeVar("T")


def on_db(env: dict[str, str], work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def run() -> T:
        conn = await asyncpg.connect(dsn(env))
        try:
            await migrate(conn)
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


async def add_execution(
    conn: asyncpg.Connection,
    status: str,
    created_ago: timedelta,
    path: str | None = None,
    error: str | None = None,
    finished_ago: timedelta | None = None,
) -> uuid.UUID:
    execution_id = uuid.uuid4()
    created = NOW - created_ago
    finished = (
        None if status == "RUNNING" else NOW - (finished_ago if finished_ago is not None else created_ago)
    )
    await conn.execute(
        """
        INSERT INTO noetl.executions (execution_id, status, path, error, created_at, updated_at, finished_at)
        VALUES ($1, $2, $3, $4, $5, $5, $6)
        """,
        execution_id,
        status,
        path,
        error,
        created,
        finished,
    )
    return execution_id


async def add_step(
    conn: asyncpg.Connection,
    execution_id: uuid.UUID,
    step: str,
    status: str,
    ago: timedelta,
    error: str | None = None,
) -> None:
    await conn.execute(
        """
        INSERT INTO noetl.step_runs (execution_id, step, status, error, started_at, finished_at)
        VALUES ($1, $2, $3, $4, $5, $5)
        """,
        execution_id,
        step,
        status,
        error,
        NOW - ago,
    )


def test_status_counts_count_the_executions_started_since(pg_env: dict[str, str]) -> None:
    async def work(conn: asyncpg.Connection) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        minutes, hours, days = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
        for status, count, ago in [
            ("COMPLETED", 7, 10 * minutes),
            ("FAILED", 3, 20 * minutes),
            ("RUNNING", 2, 1 * minutes),
            ("COMPLETED", 5, 3 * hours),  # within the day, not the hour
            ("CANCELLED", 1, 5 * hours),
            ("FAILED", 4, 2 * days),  # older than both
        ]:
            for _ in range(count):
                await add_execution(conn, status, ago)
        return (
            await overview.status_counts(conn, NOW - hours),
            await overview.status_counts(conn, NOW - days),
            await overview.status_counts(conn, NOW + minutes),
        )

    hour, day, future = on_db(pg_env, work)
    assert hour == {"RUNNING": 2, "COMPLETED": 7, "FAILED": 3, "CANCELLED": 0}
    assert day == {"RUNNING": 2, "COMPLETED": 12, "FAILED": 3, "CANCELLED": 1}
    # Every status is a key, with 0 when none started since.
    assert future == {"RUNNING": 0, "COMPLETED": 0, "FAILED": 0, "CANCELLED": 0}


def test_recent_failures_newest_first_with_the_failed_step_and_its_error(pg_env: dict[str, str]) -> None:
    async def work(conn: asyncpg.Connection) -> tuple[list[dict[str, Any]], dict[str, uuid.UUID]]:
        m = timedelta(minutes=1)
        ids = {}
        # A playbook that failed at `load` after `extract` was done: the step and its error.
        ids["playbook"] = await add_execution(
            conn, "FAILED", 30 * m, "etl/daily", "step 'load' failed: exit 3", finished_ago=5 * m
        )
        await add_step(conn, ids["playbook"], "extract", "done", 20 * m)
        await add_step(conn, ids["playbook"], "load", "failed", 6 * m, error="exit 3: disk full")
        await add_step(conn, ids["playbook"], "notify", "cancelled", 6 * m)
        # Two steps failed (parallel branches): the one that failed last is shown.
        ids["two"] = await add_execution(conn, "FAILED", 40 * m, "etl/fan", "branch b", finished_ago=15 * m)
        await add_step(conn, ids["two"], "a", "failed", 25 * m, error="a broke")
        await add_step(conn, ids["two"], "b", "failed", 16 * m, error="b broke")
        # A `noetl submit` execution: no path, no step; its own error.
        ids["submit"] = await add_execution(conn, "FAILED", 12 * m, error="exit 1", finished_ago=10 * m)
        # The oldest failure, and others that did not fail.
        ids["old"] = await add_execution(
            conn, "FAILED", 3 * 60 * m, "etl/old", "timeout", finished_ago=60 * m
        )
        await add_execution(conn, "COMPLETED", 1 * m, "etl/daily")
        await add_execution(conn, "CANCELLED", 2 * m, "etl/daily", "cancelled")
        await add_execution(conn, "RUNNING", 1 * m, "etl/daily")
        return await overview.recent_failures(conn, 3), ids

    failures, ids = on_db(pg_env, work)
    assert [f["execution_id"] for f in failures] == [ids["playbook"], ids["submit"], ids["two"]]
    first, submit, two = failures
    assert (first["path"], first["step"], first["error"]) == ("etl/daily", "load", "exit 3: disk full")
    assert first["finished_at"] > submit["finished_at"] > two["finished_at"]
    assert (submit["path"], submit["step"], submit["error"]) == (None, None, "exit 1")
    assert (two["step"], two["error"]) == ("b", "b broke")


def test_workers_load_lists_the_online_workers_with_their_leased_commands(pg_env: dict[str, str]) -> None:
    async def work(conn: asyncpg.Connection) -> list[dict[str, Any]]:
        for worker_id, status in [
            ("h:worker_00:1", "online"),
            ("h:worker_01:2", "online"),
            ("h:gone:3", "offline"),
        ]:
            await conn.execute(
                """
                INSERT INTO noetl.workers (worker_id, name, host, pid, concurrency, status)
                VALUES ($1, split_part($1, ':', 2), 'h', split_part($1, ':', 3)::int, 4, $2)
                """,
                worker_id,
                status,
            )
        execution_id = await add_execution(conn, "RUNNING", timedelta(minutes=1))
        # worker_00 holds 3 leases; its finished commands and others' pending ones do not count.
        leases: list[tuple[str | None, str, int]] = [
            ("h:worker_00:1", "claimed", 3),
            ("h:worker_00:1", "completed", 5),
            ("h:worker_01:2", "failed", 1),
            (None, "pending", 2),
        ]
        for holder, state, count in leases:
            for _ in range(count):
                await conn.execute(
                    """
                    INSERT INTO noetl.commands
                        (command_id, execution_id, tool, timeout, max_attempts, status, worker_id)
                    VALUES (gen_random_uuid(), $1, '{"kind": "shell"}', 10, 1, $2, $3)
                    """,
                    execution_id,
                    state,
                    holder,
                )
        return await overview.workers_load(conn)

    load = on_db(pg_env, work)
    assert [(w["worker_id"], w["name"], w["pid"], w["concurrency"], w["running"]) for w in load] == [
        ("h:worker_00:1", "worker_00", 1, 4, 3),
        ("h:worker_01:2", "worker_01", 2, 4, 0),
    ]
    assert all(w["heartbeat_at"] is not None and w["host"] == "h" for w in load)
