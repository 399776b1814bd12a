"""The executions list and the overview at 100,000 executions: each statement they send reads a
page's worth of rows, the rows of its window, or stops at the count's cap, however large the
table. The statements are the ones the code really sends (caught with asyncpg's query logger),
explained with ANALYZE on a seeded real PostgreSQL, planned for their values as the list plans
them; the test counts the rows each plan reads from ``noetl.executions`` (no timing)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from bench.seed_ui import seed_executions
from noetl.server import paging
from noetl.server.queries import executions, overview
from tests.server.test_bounds import dsn
from tests.services import Postgres

pytestmark = pytest.mark.integration

N = 100_000
LIMIT = 50
EXECUTIONS = "executions"


@pytest.fixture(scope="module")
def seeded(pg_server: Postgres) -> Iterator[dict[str, Any]]:
    """One database of N seeded executions for the module (seeding takes seconds)."""
    name = f"noetl_plans_{uuid.uuid4().hex[:8]}"
    pg_server.create_database(name)
    env = pg_server.env(name)

    async def seed() -> dict[str, int]:
        conn = await asyncpg.connect(dsn(env))
        try:
            return await seed_executions(conn, N)
        finally:
            await conn.close()

    yield {"env": env, "counts": asyncio.run(seed())}


def sent(
    env: dict[str, str], call: Callable[[asyncpg.Connection], Awaitable[Any]]
) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements ``call`` sends, with their arguments."""

    async def run() -> list[tuple[str, tuple[Any, ...]]]:
        conn = await asyncpg.connect(dsn(env))
        logged: list[tuple[str, tuple[Any, ...]]] = []
        conn.add_query_logger(lambda record: logged.append((record.query, tuple(record.args))))
        try:
            await call(conn)
        finally:
            await conn.close()
        return logged

    return asyncio.run(run())


def _literal(value: Any) -> str:
    if isinstance(value, bool | int):
        return str(value)
    if isinstance(value, list):
        return "ARRAY[" + ",".join(_literal(v) for v in value) + "]::text[]"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text.replace("'", "''") + "'"


def rows_read(env: dict[str, str], query: str, args: tuple[Any, ...], generic: bool) -> tuple[int, set[str]]:
    """Rows the plan read from noetl.executions (kept and filtered out, every loop), and how:
    the scan nodes on that table (``Seq Scan``, ``Index Only Scan using <index>``, ...)."""

    async def run() -> dict[str, Any]:
        conn = await asyncpg.connect(dsn(env))
        try:
            await conn.execute(
                f"SET plan_cache_mode = {'force_generic_plan' if generic else 'force_custom_plan'}"
            )
            await conn.execute(f"PREPARE probe AS {query}")
            values = ", ".join(_literal(a) for a in args)
            execute = f"EXECUTE probe({values})" if args else "EXECUTE probe"
            plan = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {execute}")
            return dict(json.loads(plan)[0]["Plan"])
        finally:
            await conn.close()

    total = 0
    how: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        nonlocal total
        if node.get("Relation Name") == EXECUTIONS:
            loops = int(node.get("Actual Loops", 1))
            total += int(
                (
                    node.get("Actual Rows", 0)
                    + node.get("Rows Removed by Filter", 0)
                    + node.get("Rows Removed by Index Recheck", 0)
                )
                * loops
            )
            index = node.get("Index Name")
            how.add(node["Node Type"] + (f" using {index}" if index else ""))
        for child in node.get("Plans", []):
            walk(child)

    walk(asyncio.run(run()))
    return total, how


def reads(statements: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[str, tuple[Any, ...]]]:
    return [(q, a) for q, a in statements if "noetl.executions" in q]


def check(
    env: dict[str, str], statements: list[tuple[str, tuple[Any, ...]]], bound: Callable[[str], int]
) -> None:
    assert reads(statements)
    for query, args in reads(statements):
        total, how = rows_read(env, query, args, generic=False)
        where = f"plan of {' '.join(query.split())[:160]} {args}"
        assert total <= bound(query), f"{where}: read {total} rows by {how}"


def page_bound(query: str) -> int:
    # A page reads at most 1,250 rows (1.25% of the table): the planner walks the newest-first
    # index while at least about 1 row in 25 matches the filter (rows in insertion order make
    # that walk cheap), and takes the filter's own index for anything rarer. The capped count
    # reads at most the cap and what its filter skipped on the way.
    return 2 * (paging.TOTAL_CAP + 1) if "count(*)" in query else 25 * LIMIT


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"status": "FAILED"},
        {"status": "CANCELLED"},
        {"status": "RUNNING"},
        {"path": "bench/p03"},
        {"path": "bench/p03", "status": "CANCELLED"},
        {"path": "bench/p03", "status": "RUNNING"},
        {"path": "no/such/playbook"},
        {"parent_execution_id": uuid.UUID(int=7)},
    ],
    ids=lambda f: "-".join(str(v) for v in f.values()) or "all",
)
def test_each_page_of_the_executions_list_reads_about_a_page(
    seeded: dict[str, Any], filters: dict[str, Any]
) -> None:
    env = seeded["env"]

    async def first_and_deep(conn: asyncpg.Connection) -> None:
        await executions.list_executions(conn, filters.get("status"), LIMIT, **_named(filters))
        # A page deep in the list: keyed by a row 4 days back.
        after = (datetime.now(UTC) - timedelta(days=4), uuid.UUID(int=0))
        await executions.list_executions(conn, filters.get("status"), LIMIT, after=after, **_named(filters))

    statements = sent(env, first_and_deep)
    # Planned for their values (a kept generic plan would walk the table for a rare value).
    assert [q for q, _ in statements if "plan_cache_mode" in q] == [
        "SET LOCAL plan_cache_mode = force_custom_plan"
    ] * 2
    check(env, statements, page_bound)


def _named(filters: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in filters.items() if k != "status"}


def test_the_list_answers_right_at_that_size(seeded: dict[str, Any]) -> None:
    """The same calls give the seeded numbers: the plans above are of queries that work."""
    env, counts = seeded["env"], seeded["counts"]

    async def run(conn: asyncpg.Connection) -> dict[str, Any]:
        _, cancelled, capped_cancelled = await executions.list_executions(conn, "CANCELLED", LIMIT)
        _, everything, capped = await executions.list_executions(conn, None, LIMIT)
        p03, in_path, _ = await executions.list_executions(conn, None, LIMIT, path="bench/p03")
        running_p03, _, _ = await executions.list_executions(conn, "RUNNING", LIMIT, path="bench/p03")
        return {
            "cancelled": (cancelled, capped_cancelled),
            "all": (everything, capped),
            "p03": (len(p03), in_path, {r["path"] for r in p03}),
            "running_p03": [r["status"] for r in running_p03],
        }

    found = asyncio.run(_on(env, run))
    assert found["cancelled"] == (counts["CANCELLED"], False)  # 5,000: under the cap
    assert found["all"] == (paging.TOTAL_CAP, True)
    # One in ten is a `noetl submit` run; the rest spread over 20 paths: bench/p03 has i % 20 == 3.
    assert found["p03"] == (LIMIT, N // 20, {"bench/p03"})
    assert found["running_p03"] == ["RUNNING"]  # the 20 newest run; i = 3 is the one of p03


async def _on(env: dict[str, str], work: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
    conn = await asyncpg.connect(dsn(env))
    try:
        return await work(conn)
    finally:
        await conn.close()


def test_the_overview_reads_the_window_or_the_few_rows_it_shows(seeded: dict[str, Any]) -> None:
    env, counts = seeded["env"], seeded["counts"]
    hour = datetime.now(UTC) - timedelta(hours=1)

    async def run(conn: asyncpg.Connection) -> tuple[dict[str, int], list[dict[str, Any]]]:
        return await overview.status_counts(conn, hour), await overview.recent_failures(conn, 10)

    by_status, failures = asyncio.run(_on(env, run))
    # 100,000 over 7 days: about 595 an hour, the newest 20 running.
    in_hour = sum(by_status.values())
    assert N // (7 * 24) - 10 <= in_hour <= N // (7 * 24) + 1 and by_status["RUNNING"] == 20
    assert len(failures) == 10 and all(f["error"] for f in failures)
    # A playbook run names the step that failed; a `noetl submit` one (no path) has none.
    assert {(f["path"] is None, f["step"]) for f in failures} <= {(False, "transform"), (True, None)}
    assert [f["finished_at"] for f in failures] == sorted((f["finished_at"] for f in failures), reverse=True)
    assert counts["FAILED"] == N // 10

    counted = sent(env, lambda conn: overview.status_counts(conn, hour))
    # The counts read the executions of the window from the index alone, not the table.
    check(env, counted, lambda q: in_hour + 4)
    ((query, args),) = reads(counted)
    assert rows_read(env, query, args, False)[1] == {"Index Only Scan using executions_status_idx"}
    failed = sent(env, lambda conn: overview.recent_failures(conn, 10))
    check(env, failed, lambda q: 10)
    ((query, args),) = reads(failed)
    assert rows_read(env, query, args, False)[1] == {"Index Scan using executions_failed_idx"}
