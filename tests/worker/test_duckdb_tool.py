"""The duckdb tool in its own child process with the real duckdb package: several statements, the
last one's rows as objects, dates and decimals as JSON, a file database, errors in one line."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from noetl.tools.registry import Outcome, ToolContext, run_tool

pytest.importorskip("duckdb", reason="the duckdb extra (make install installs it)")

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def query(sql: str, database: str = ":memory:", timeout: float = 60) -> Outcome:
    return asyncio.run(
        run_tool({"kind": "duckdb", "query": sql, "database": database}, ToolContext(timeout, ENV))
    )


def test_the_rows_of_the_last_statement_as_objects() -> None:
    outcome = query(
        """
        CREATE TABLE people (name TEXT, age INTEGER);
        INSERT INTO people VALUES ('Alice', 30), ('Bob', 25);
        SELECT name, age FROM people ORDER BY age DESC
        """
    )
    assert outcome.ok, outcome.error
    assert outcome.result == [{"name": "Alice", "age": 30}, {"name": "Bob", "age": 25}]


def test_dates_decimals_and_nested_values_are_json() -> None:
    outcome = query(
        "SELECT DATE '2024-02-29' AS d, TIMESTAMP '2024-01-02 03:04:05' AS ts, 12.50::DECIMAL(10,2) AS price,"
        " 3::DECIMAL(4,0) AS whole, [1, 2] AS xs, {'k': 'v'} AS obj, NULL AS nothing"
    )
    assert outcome.ok, outcome.error
    assert outcome.result == [
        {
            "d": "2024-02-29",
            "ts": "2024-01-02T03:04:05",
            "price": 12.5,
            "whole": 3,
            "xs": [1, 2],
            "obj": {"k": "v"},
            "nothing": None,
        }
    ]
    json.dumps(outcome.result)


def test_a_write_last_gives_duckdbs_own_answer_and_ddl_last_gives_no_rows() -> None:
    outcome = query("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2)")
    assert outcome.ok and outcome.result == [{"Count": 2}]
    assert query("CREATE TABLE t (x INTEGER)").result == []


def test_a_file_database_keeps_its_tables_between_commands(tmp_path: Path) -> None:
    db = str(tmp_path / "data.duckdb")
    assert query("CREATE TABLE t AS SELECT range AS x FROM range(5)", db).ok
    assert query("SELECT sum(x) AS total FROM t", db).result == [{"total": 10}]


def test_a_bad_query_fails_with_duckdbs_message_on_one_line() -> None:
    outcome = query("SELECT * FROM nowhere")
    assert not outcome.ok
    assert outcome.error is not None and "nowhere" in outcome.error and "\n" not in outcome.error


def test_a_runaway_query_is_killed_at_the_timeout() -> None:
    # It runs in a child process of its own: the timeout kills that process, the caller goes on.
    outcome = query("SELECT count(*) FROM range(10000000000) a, range(10000000000) b", timeout=1)
    assert not outcome.ok and outcome.error == "timed out after 1s: killed"
