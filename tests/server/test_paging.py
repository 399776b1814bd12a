"""Lists page by key: following ``next`` returns every row exactly once while rows are inserted
between the pages (with timestamps that tie, and new ones on either side of the cursor)."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.server.test_bounds import dsn

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: p{i}, path: "demo/p{i:02d}"}}
workflow:
  - step: start
    tool: {{kind: shell, command: "echo {i}"}}
"""

pytestmark = pytest.mark.integration


def sql(env: dict[str, str], statement: str, *args: Any) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(dsn(env))
        try:
            await conn.execute(statement, *args)
        finally:
            await conn.close()

    asyncio.run(run())


def add_executions(env: dict[str, str], times: list[datetime]) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in times]
    sql(
        env,
        """
        INSERT INTO noetl.executions (execution_id, status, created_at, updated_at)
        SELECT id, 'COMPLETED', at, at FROM unnest($1::uuid[], $2::timestamptz[]) AS t(id, at)
        """,
        ids,
        times,
    )
    return ids


def walk(
    api: httpx.Client, path: str, params: dict[str, Any], key: str, between: Callable[[int], None]
) -> list[dict[str, Any]]:
    """Every page of a list, following ``next`` (sent back as ``key``); ``between`` runs after each."""
    rows: list[dict[str, Any]] = []
    pages = 0
    while True:
        answer = api.get(path, params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        rows.extend(page.get("items", page.get("entries", [])))
        pages += 1
        between(pages)
        if page["next"] is None:
            return rows
        params = {**params, key: page["next"]}


def test_executions_page_by_key_while_rows_arrive(api: httpx.Client, pg_env: dict[str, str]) -> None:
    # 60 executions over 20 distinct times: three share each created_at (the id breaks the tie).
    times = [T0 + timedelta(seconds=i // 3) for i in range(60)]
    first = add_executions(pg_env, times)
    late: list[str] = []

    def insert(page: int) -> None:
        # Newer rows land on pages already read; older ones (and ties) on pages still to come.
        late.extend(add_executions(pg_env, [T0 + timedelta(days=1), T0 - timedelta(days=page)]))
        late.extend(add_executions(pg_env, [T0 + timedelta(seconds=2)]))

    rows = walk(api, "/api/executions", {"limit": 7}, "cursor", insert)
    seen = Counter(r["execution_id"] for r in rows)
    assert all(n == 1 for n in seen.values()), [i for i, n in seen.items() if n > 1]
    assert set(first) <= set(seen)  # every row there at the start, exactly once
    # Newest first, ties by id, across page boundaries.
    keys = [(datetime.fromisoformat(r["created_at"]), r["execution_id"]) for r in rows]
    assert keys == sorted(keys, key=lambda k: (-k[0].timestamp(), k[1]))
    # The older rows inserted while paging came on later pages, once each.
    older = [i for i in late if i in seen]
    assert len(older) == len(set(older)) > 0


def test_executions_filter_by_path_and_status_page_by_key(api: httpx.Client, pg_env: dict[str, str]) -> None:
    # 45 executions: 3 paths (and none: `noetl submit`) x 3 statuses, one second apart.
    sql(
        pg_env,
        """
        INSERT INTO noetl.executions (execution_id, status, path, created_at, updated_at)
        SELECT gen_random_uuid(), (ARRAY['COMPLETED', 'FAILED', 'RUNNING'])[i % 3 + 1],
               CASE WHEN i % 5 < 3 THEN 'demo/p' || (i % 5) END,
               $1::timestamptz + make_interval(secs => i), $1
        FROM generate_series(0, 44) AS i
        """,
        T0,
    )
    rows = walk(api, "/api/executions", {"path": "demo/p1", "limit": 2}, "cursor", lambda _: None)
    assert len(rows) == 9 and {r["path"] for r in rows} == {"demo/p1"}
    assert [r["created_at"] for r in rows] == sorted((r["created_at"] for r in rows), reverse=True)
    both = {"path": "demo/p1", "status": "FAILED", "limit": 2}
    rows = walk(api, "/api/executions", both, "cursor", lambda _: None)
    # i % 5 == 1 and i % 3 == 1: i in 1, 16, 31
    assert [datetime.fromisoformat(r["created_at"]) for r in rows] == [
        T0 + timedelta(seconds=s) for s in (31, 16, 1)
    ]
    page = api.get("/api/executions", params={"path": "demo/p1", "status": "FAILED"}).json()
    assert (page["total"], page["next"]) == (3, None)
    assert api.get("/api/executions", params={"path": "demo/none"}).json()["items"] == []
    assert api.get("/api/executions", params={"path": ""}).status_code == 422


def test_executions_total_is_counted_up_to_a_cap(api: httpx.Client, pg_env: dict[str, str]) -> None:
    from noetl.server.paging import TOTAL_CAP

    sql(
        pg_env,
        """
        INSERT INTO noetl.executions (execution_id, status, created_at)
        SELECT gen_random_uuid(), 'FAILED', now() FROM generate_series(1, $1)
        """,
        TOTAL_CAP + 5,
    )
    page = api.get("/api/executions", params={"status": "FAILED", "limit": 1}).json()
    assert (page["total"], page["total_capped"]) == (TOTAL_CAP, True)
    add_executions(pg_env, [T0, T0])
    page = api.get("/api/executions", params={"status": "COMPLETED", "limit": 1}).json()
    assert (page["total"], page["total_capped"], len(page["items"])) == (2, False, 1)
    assert page["next"] is not None


def test_a_cursor_not_made_by_the_server_is_one_line_422(api: httpx.Client) -> None:
    forged = base64.urlsafe_b64encode(b'["yesterday", "x"]').decode()
    for cursor in ("%%%", "bm90IGpzb24", forged):
        answer = api.get("/api/executions", params={"cursor": cursor})
        assert answer.status_code == 422
        assert answer.json() == {
            "detail": "cursor is not a `next` value this server returned; start again without it"
        }


def test_workers_page_by_key_while_workers_register(api: httpx.Client) -> None:
    def register(name: str) -> None:
        body = {"worker_id": name, "name": name, "host": "h", "pid": 1, "concurrency": 1}
        assert api.post("/api/workers", json=body).status_code == 200

    for i in range(30):
        register(f"w{i:03d}")

    def insert(page: int) -> None:
        register(f"w{page:03d}a")  # behind the cursor: not seen, never twice
        register(f"w{100 + page:03d}")  # ahead of it: seen once

    rows = walk(api, "/api/workers", {"limit": 4}, "after", insert)
    seen = Counter(r["worker_id"] for r in rows)
    assert all(n == 1 for n in seen.values())
    assert {f"w{i:03d}" for i in range(30)} <= set(seen)
    assert [r["worker_id"] for r in rows] == sorted(seen)


def test_catalog_and_events_page_by_key(api: httpx.Client, pg_env: dict[str, str]) -> None:
    for i in range(12):
        content = PLAYBOOK.format(i=i)
        answer = api.post("/api/catalog/register", json={"content": content})
        assert answer.status_code == 200, answer.text
    paths = [e["path"] for e in walk(api, "/api/catalog", {"limit": 5}, "after", lambda _: None)]
    assert paths == [f"demo/p{i:02d}" for i in range(12)]
    listed: list[str] = []
    after = None
    while True:
        body = {"limit": 5, **({"after": after} if after else {})}
        page = api.post("/api/catalog/list", json=body).json()
        listed += [e["path"] for e in page["entries"]]
        after = page["next"]
        if after is None:
            break
    assert listed == paths

    execution_id = api.post("/api/execute", json={"path": "demo/p00"}).json()["execution_id"]
    sql(
        pg_env,
        """
        INSERT INTO noetl.events (execution_id, type, node_name, status)
        SELECT $1, 'step.enter', 'n' || i, 'RUNNING' FROM generate_series(1, 23) AS i
        """,
        uuid.UUID(execution_id),
    )
    events = walk(api, f"/api/executions/{execution_id}/events", {"limit": 4}, "after", lambda _: None)
    ids = [e["event_id"] for e in events]
    assert ids == sorted(set(ids)) and len(ids) >= 23
