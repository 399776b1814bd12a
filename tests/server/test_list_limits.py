"""Every list keeps its documented `limit` (docs/api.md): a page holds the default number of rows
when none is asked for, the maximum is accepted, and 0 or one past the maximum is a one-line 422
that names `limit`. The rows are made in SQL: more than every default, on one server."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.server.test_paging import sql

pytestmark = pytest.mark.integration

# path -> (default, maximum, the key a page lists its rows under)
LISTS = {
    "/api/executions": (50, 500, "items"),
    "/api/executions/{execution_id}/events": (100, 1000, "items"),
    "/api/workers": (500, 1000, "items"),
    "/api/catalog": (500, 1000, "entries"),
}
ROWS = 510  # more than every default, and than the executions' maximum (500)


def make_rows(pg_env: dict[str, str]) -> str:
    """ROWS executions, workers, catalog paths, and ROWS events of one execution (returned)."""
    execution_id = uuid.uuid4()
    sql(
        pg_env,
        """
        INSERT INTO noetl.executions (execution_id, status)
        SELECT CASE WHEN i = 1 THEN $1 ELSE gen_random_uuid() END, 'COMPLETED'
        FROM generate_series(1, $2) AS i
        """,
        execution_id,
        ROWS,
    )
    sql(
        pg_env,
        """
        INSERT INTO noetl.events (execution_id, type, node_name, status)
        SELECT $1, 'step.enter', 'n' || i, 'RUNNING' FROM generate_series(1, $2) AS i
        """,
        execution_id,
        ROWS,
    )
    sql(
        pg_env,
        """
        INSERT INTO noetl.workers (worker_id, name, host, pid, concurrency, status)
        SELECT 'w' || lpad(i::text, 4, '0'), 'w', 'h', i, 1, 'online' FROM generate_series(1, $1) AS i
        """,
        ROWS,
    )
    sql(
        pg_env,
        """
        INSERT INTO noetl.catalog (path, version, kind, name, content, content_hash)
        SELECT 'limits/p' || lpad(i::text, 4, '0'), 1, 'Playbook', 'p', 'x', md5(i::text)
        FROM generate_series(1, $1) AS i
        """,
        ROWS,
    )
    return str(execution_id)


def test_every_list_keeps_its_limits(api: httpx.Client, pg_env: dict[str, str]) -> None:
    execution_id = make_rows(pg_env)
    for template, (default, maximum, key) in LISTS.items():
        path = template.format(execution_id=execution_id)
        page = api.get(path)
        assert page.status_code == 200, (path, page.text)
        assert len(page.json()[key]) == default, path
        assert page.json()["next"] is not None, path
        whole = api.get(path, params={"limit": maximum})
        assert whole.status_code == 200, (path, whole.text)
        assert len(whole.json()[key]) == min(ROWS, maximum), path
        for wrong in (0, maximum + 1):
            refused = api.get(path, params={"limit": wrong})
            assert refused.status_code == 422, (path, wrong, refused.text)
            detail = refused.json()["detail"]
            assert isinstance(detail, str) and "\n" not in detail and "limit" in detail, (path, detail)
    # The catalog's POST form has the same bounds.
    listed = api.post("/api/catalog/list", json={})
    assert len(listed.json()["entries"]) == 500
    for wrong in (0, 1001):
        refused = api.post("/api/catalog/list", json={"limit": wrong})
        assert refused.status_code == 422 and "limit" in refused.json()["detail"], refused.text
